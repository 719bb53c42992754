"""Candidates per second and p50/p99 latency at concurrency 1, 8 and 32, with @serve.batch against without.

Needs an active LRURec version in the database:

    .venv/bin/tandem db import movielens && .venv/bin/tandem train lrurec
    .venv/bin/python benchmarks/candidates.py

Both variants are the real `CandidateServer` deployment (history read from PostgreSQL, one forward pass
per batch), called through Serve handles in one run; "without" has max_batch_size = 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import ray
from ray import serve

from db.server import database_url
from deployments.candidates import CandidateServer
from deployments.candidates_protocol import CandidateRequest
from deployments.service_error import ServiceError
from tandem.settings import Settings


async def measure(handle, users: list[str], concurrency: int, requests: int) -> dict:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(user: str) -> None:
        async with limit:
            started = time.perf_counter()
            result = await handle.candidates.remote(CandidateRequest(user_id=user, k=20))
            latencies.append(time.perf_counter() - started)
            assert not isinstance(result, ServiceError), result

    started = time.perf_counter()
    await asyncio.gather(*(one(random.choice(users)) for _ in range(requests)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "candidates_per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


async def run(handles: dict, users: list[str], requests: int, repeats: int) -> dict:
    rounds: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for concurrency in (1, 8, 32):
            for name, handle in handles.items():
                n = requests if concurrency > 1 else requests // 4
                rounds.setdefault(f"{name}@{concurrency}", []).append(await measure(handle, users, concurrency, n))
    table = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in rounds.items()}
    for c in (1, 8, 32):
        table[f"ratio@{c}"] = round(table[f"batched@{c}"]["candidates_per_s"]
                                    / table[f"unbatched@{c}"]["candidates_per_s"], 2)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        unbatched = settings.model_copy(update={"candidates_max_batch_size": 1})
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        try:
            handles = {
                "batched": serve.run(CandidateServer.options(name="Batched").bind(settings),
                                     name="bench-batched", route_prefix=None),
                "unbatched": serve.run(CandidateServer.options(name="Unbatched").bind(unbatched),
                                       name="bench-unbatched", route_prefix=None),
            }
            users = [str(u) for u in range(1, 611)]
            print(json.dumps(asyncio.run(run(handles, users, args.requests, args.repeats)), indent=2))
        finally:
            serve.shutdown()
            ray.shutdown()


if __name__ == "__main__":
    main()
