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

from closed_loop import batched_vs_unbatched, two_deployments

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        unbatched = settings.model_copy(update={"candidates_max_batch_size": 1})
        users = [str(u) for u in range(1, 611)]
        with two_deployments(CandidateServer, settings, unbatched) as handles:
            calls = {name: candidates_call(handle) for name, handle in handles.items()}
            print(json.dumps(asyncio.run(batched_vs_unbatched(calls, users, args.requests, args.repeats,
                                                              "candidates")), indent=2))


if __name__ == "__main__":
    main()
