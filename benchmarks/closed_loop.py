"""A closed-loop load: `requests` calls with `concurrency` in flight, each for a random user; throughput and
p50/p99 latency. Shared by the benchmarks that run as scripts from this folder."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager


async def measure(
    call: Callable[[str], Awaitable[None]], users: list[str], concurrency: int, requests: int, unit: str
) -> dict:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(user: str) -> None:
        async with limit:
            started = time.perf_counter()
            await call(user)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(random.choice(users)) for _ in range(requests)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        f"{unit}_per_s": round(requests / wall, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


async def batched_vs_unbatched(calls: dict[str, Callable[[str], Awaitable[None]]], keys: list[str], requests: int,
                               repeats: int, unit: str) -> dict:
    """Alternating rounds of `calls["batched"]` and `calls["unbatched"]` at concurrency 1, 8 and 32; medians
    per variant and concurrency, and the batched/unbatched throughput ratio."""
    rounds: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for concurrency in (1, 8, 32):
            for name, call in calls.items():
                n = requests if concurrency > 1 else requests // 4
                rounds.setdefault(f"{name}@{concurrency}", []).append(
                    await measure(call, keys, concurrency, n, unit))
    table = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in rounds.items()}
    for c in (1, 8, 32):
        table[f"ratio@{c}"] = round(table[f"batched@{c}"][f"{unit}_per_s"] / table[f"unbatched@{c}"][f"{unit}_per_s"],
                                    2)
    return table


@contextmanager
def two_deployments(deployment, batched_settings, unbatched_settings) -> Iterator[dict]:
    """The same Serve deployment twice on a local Ray, batched and unbatched; yields their handles."""
    import ray
    from ray import serve

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield {
            "batched": serve.run(deployment.options(name="Batched").bind(batched_settings),
                                 name="bench-batched", route_prefix=None),
            "unbatched": serve.run(deployment.options(name="Unbatched").bind(unbatched_settings),
                                   name="bench-unbatched", route_prefix=None),
        }
    finally:
        serve.shutdown()
        ray.shutdown()
