"""A closed-loop load: `requests` calls with `concurrency` in flight, each for a random user; throughput and
p50/p99 latency. Shared by the benchmarks that run as scripts from this folder.

Importing it puts this process in the Serve mode the stack runs in (`ops/serve_mode.py`: handles over gRPC, user
code on the replica's own loop), so the deployments it starts and the handles it calls are the stack's; it must
come before anything imports `ray.serve`. `RAY_SERVE_THROUGHPUT_OPTIMIZED=0 RAY_SERVE_ENABLE_HA_PROXY=0` in the
environment measures Serve's default mode instead."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from ops import serve_mode

serve_mode.enter()
# This process calls its handles from more than one event loop (an `asyncio.run` per measurement, blocking waits),
# so their router gets a loop of its own, as outside the throughput mode. It concerns only handles made here: the
# deployments measured call none.
os.environ["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] = "1"


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


async def compare(calls: dict[str, Callable[[str], Awaitable[None]]], keys: list[str], requests: int, repeats: int,
                  unit: str, baseline: str) -> dict:
    """Alternating rounds of every variant in `calls` at concurrency 1, 8 and 32; medians per variant and
    concurrency, and each variant's throughput over `baseline`'s."""
    rounds: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for concurrency in (1, 8, 32):
            for name, call in calls.items():
                n = requests if concurrency > 1 else requests // 4
                rounds.setdefault(f"{name}@{concurrency}", []).append(
                    await measure(call, keys, concurrency, n, unit))
    table = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in rounds.items()}
    for name in calls:
        if name != baseline:
            for c in (1, 8, 32):
                table[f"{name}/{baseline}@{c}"] = round(
                    table[f"{name}@{c}"][f"{unit}_per_s"] / table[f"{baseline}@{c}"][f"{unit}_per_s"], 2)
    return table


@contextmanager
def deployments(variants: dict[str, tuple]) -> Iterator[dict]:
    """Each variant, `name: (deployment, settings)`, as a Serve application of its own on a local Ray; yields
    their handles by name."""
    import ray
    from ray import serve

    from tandem.logs import serve_logging

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        # No CPU reservation: the variants share the machine's cores in turn, and more of them than cores would
        # otherwise wait for room.
        # Logging as the stack configures it (no access log line per request below DEBUG).
        yield {name: serve.run(deployment.options(name=name.capitalize(), ray_actor_options={"num_cpus": 0},
                                                  logging_config=serve_logging(settings))
                               .bind(settings), name=f"bench-{name}", route_prefix=None)
               for name, (deployment, settings) in variants.items()}
    finally:
        serve.shutdown()
        ray.shutdown()
