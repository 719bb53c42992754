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
import statistics

import ray
from closed_loop import measure
from ray import serve

from db.server import database_url
from deployments.candidates import CandidateServer
from deployments.candidates_protocol import CandidateRequest
from deployments.service_error import ServiceError
from tandem.settings import Settings


def candidates_call(handle):
    async def call(user: str) -> None:
        result = await handle.candidates.remote(CandidateRequest(user_id=user, k=20))
        assert not isinstance(result, ServiceError), result

    return call


async def run(handles: dict, users: list[str], requests: int, repeats: int) -> dict:
    rounds: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for concurrency in (1, 8, 32):
            for name, handle in handles.items():
                n = requests if concurrency > 1 else requests // 4
                rounds.setdefault(f"{name}@{concurrency}", []).append(
                    await measure(candidates_call(handle), users, concurrency, n, "candidates"))
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
