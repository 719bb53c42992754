"""The LLM engine computes on every core of the node (TANDEM_LLM_CPU_CORES=all), below the serving processes'
priority: read from the running stack's vLLM processes, their OpenMP thread count, the cores their threads are bound
to and the threads' niceness."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import ValidationError

from deployments.servers.engine_placement import cpu_threads_env
from tandem.settings import Settings


def _llm_replica() -> psutil.Process:
    return next(p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith(
        "ray::ServeReplica:tandem:LLMServer"))


def _engine_processes(replica: psutil.Process, timeout_s: float = 30) -> list[psutil.Process]:
    """The replica's vLLM processes once its engine worker runs; the processes it has are named in the failure."""
    deadline = time.monotonic() + timeout_s
    while True:
        engines = [p for p in replica.children(recursive=True) if p.name().startswith("VLLM")]
        if any(p.name() == "VLLM::Worker" for p in engines) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert any(p.name() == "VLLM::Worker" for p in engines), (
        f"no vLLM worker under the LLM replica (pid {replica.pid}, started {time.time() - replica.create_time():.0f} s "
        f"ago); its processes: {[(p.pid, p.name(), p.cmdline()[:4]) for p in replica.children(recursive=True)]}")
    return engines


def _thread_cores(pid: int) -> list[set[int]]:
    """Each thread's allowed cores."""
    cores = []
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cores.append(_parse(line.split(":", 1)[1].strip()))
    return cores


def _parse(cpu_list: str) -> set[int]:
    cores: set[int] = set()
    for part in cpu_list.split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def test_the_engine_worker_computes_on_every_core(http: httpx.Client, settings: Settings) -> None:
    assert http.get("/readyz/llm").status_code == 200
    node = set(os.sched_getaffinity(0))
    assert cpu_threads_env(settings) == {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, sorted(node))),
                                         "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    replica = _llm_replica()
    engines = _engine_processes(replica)
    for worker in (p for p in engines if p.name() == "VLLM::Worker"):
        assert worker.environ().get("OMP_NUM_THREADS") == str(len(node))
        pinned = [cores for cores in _thread_cores(worker.pid) if len(cores) == 1]
        # One OpenMP thread bound to each core: vLLM's own choice ("auto") leaves a core of two idle.
        assert set().union(*pinned) == node, pinned

    # Every thread of every engine process below the LLM replica's priority, so that serving gets a core at once.
    nice = {os.getpriority(os.PRIO_PROCESS, t.id) for p in engines for t in p.threads()}
    assert engines and nice == {min(19, replica.nice() + settings.llm_engine_nice)}, (replica.nice(), nice)


def test_auto_and_explicit_core_lists() -> None:
    assert cpu_threads_env(Settings(llm_cpu_cores="auto")) == {}
    assert cpu_threads_env(Settings(llm_cpu_cores="0-3,6")) == {"VLLM_CPU_OMP_THREADS_BIND": "0-3,6",
                                                               "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert cpu_threads_env(Settings(device="cuda")) == {}
    with pytest.raises(ValidationError, match="llm_cpu_cores"):
        Settings(llm_cpu_cores="both")
