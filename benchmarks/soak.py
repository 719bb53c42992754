"""Soak: recommendation and QA together at capacity for half an hour; every outcome and every Serve replica's
memory (the replica process with its children, e.g. vLLM's engine core) sampled each minute.

Goals (issue: bounded work): no answer other than 200, and no replica's memory more than 10% above what it held
once warmed up (`--warmup-minutes` into the run). Same stack as benchmarks/overload.py, whose `capacity_clients`
give the client counts:

    TANDEM_ADMIN_KEY=<key> .venv/bin/python benchmarks/soak.py --minutes 30 --clients recommendations=2 qa=2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

import psutil

from ops.loadtest import Step, load, workloads
from ops.stack import api_headers
from tandem.settings import Settings


def replica_memory_mib() -> dict[str, float]:
    """Resident memory of each Serve replica process, its child processes included, by process title."""
    found: dict[str, float] = {}
    for proc in psutil.process_iter(["cmdline"]):
        title = (proc.info["cmdline"] or [""])[0]
        if not title.startswith("ray::ServeReplica"):
            continue
        try:
            family = [proc, *proc.children(recursive=True)]
            # The title names the method it runs after a dot (`...:LLMServer.handle_request`); the replica is the rest.
            found[f"{title.split('.')[0]}[{proc.pid}]"] = round(sum(p.memory_info().rss for p in family) / 2**20, 1)
        except psutil.NoSuchProcess:
            continue
    return found


async def sample_memory(every_s: float, samples: list[tuple[float, dict[str, float]]]) -> None:
    started = time.monotonic()
    while True:
        samples.append((round(time.monotonic() - started), await asyncio.to_thread(replica_memory_mib)))
        await asyncio.sleep(every_s)


async def soak(url: str, clients: dict[str, int], seconds: float) -> tuple[list, list]:
    known = workloads(Settings().data_dir)
    samples: list[tuple[float, dict[str, float]]] = []
    sampler = asyncio.create_task(sample_memory(60.0, samples))
    runs = await asyncio.gather(*(load(url, known[name], [Step(level=n, seconds=seconds)], closed=True,
                                       max_requests=10**7, timeout_s=900, seed=n, headers=api_headers())
                                  for name, n in clients.items()))
    sampler.cancel()
    samples.append((round(seconds), replica_memory_mib()))
    return runs, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--clients", nargs="+", default=["recommendations=2", "qa=2"], help="pipeline=clients")
    args = parser.parse_args()
    clients = {name: int(n) for name, n in (c.split("=") for c in args.clients)}
    runs, samples = asyncio.run(soak(args.tandem, clients, args.minutes * 60))
    warm = next(memory for at, memory in samples if at >= args.warmup_minutes * 60)
    last = samples[-1][1]
    growth = {name: round(100 * (last[name] / warm[name] - 1), 1) for name in warm if name in last}
    report = {
        "minutes": args.minutes, "clients": clients,
        "outcomes": {name: dict(Counter(o.status for o in run.outcomes)) for name, run in zip(clients, runs,
                                                                                              strict=True)},
        "degraded": {name: sum(o.degraded for o in run.outcomes) for name, run in zip(clients, runs, strict=True)},
        "memory_mib_warm": warm, "memory_mib_end": last, "growth_percent": growth,
        "replicas_gone": sorted(set(warm) - set(last)),
        "memory_mib_every_minute": samples,
    }
    print(json.dumps(report), file=sys.stdout)


if __name__ == "__main__":
    main()
