"""A closed-loop load: `requests` calls with `concurrency` in flight, each for a random user; throughput and
p50/p99 latency. Shared by the benchmarks that run as scripts from this folder."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable


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
