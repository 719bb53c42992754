"""Candidates per second and p50/p99 latency at concurrency 1, 8 and 32: histories and titles from memory (kept
current by NOTIFY), against the path before 2026-12 (the whole history and the titles read from PostgreSQL per
request, a pooled connection held across the batched forward pass), and against no batching.

Needs an active LRURec version in the database:

    .venv/bin/tandem db import movielens && .venv/bin/tandem train lrurec
    .venv/bin/python benchmarks/candidates.py

All three are the real `CandidateServer` deployment, called through Serve handles in one run, alternating;
"database_per_request" overrides how a request reads its history and titles, and keeps that path's 5 ms batch
wait; "unbatched" has max_batch_size 1. Users are drawn at random from all 610, so the memory variant reads each
from the database once.
`--replicas N` adds the memory path on N replicas, each a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from closed_loop import compare, deployments

from db.errors import NotFound
from db.interactions import titles, user_history
from db.server import database_url
from deployments.protocol.candidates import Candidate, CandidateRequest, CandidateResponse
from deployments.protocol.service_error import ServiceError
from deployments.servers.candidates import CandidateServer
from tandem.settings import Settings


class DatabasePerRequest(CandidateServer.func_or_class):
    async def _candidates(self, request: CandidateRequest) -> CandidateResponse | ServiceError:
        model, version = self.active.current, self.active.version
        async with self.db.acquire() as conn:
            try:
                events = await user_history(conn, request.user_id, limit=100_000)
            except NotFound as exc:
                return ServiceError(status=404, message=str(exc))
            history = [x.item_id for x in events]
            ranked = await self.rank_batch((model, history, None, request.k))
            names = await titles(conn, ranked.item_ids)
        return CandidateResponse(
            user_id=request.user_id, model_version=version.version, fallback=ranked.fallback,
            candidates=[Candidate(item_id=i, title=names.get(i), score=s)
                        for i, s in zip(ranked.item_ids, ranked.scores, strict=True)])


def candidates_call(handle):
    async def call(user: str) -> None:
        result = await handle.candidates.remote(CandidateRequest(user_id=user, k=20))
        assert not isinstance(result, ServiceError), result

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--replicas", type=int, default=1, help="above 1, also the memory path on this many replicas")
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        unbatched = settings.model_copy(update={"candidates_max_batch_size": 1})
        old_path = settings.model_copy(update={"candidates_batch_wait_ms": 5.0})  # its wait, as it was then
        users = [str(u) for u in range(1, 611)]
        variants = {"memory": (CandidateServer, settings),
                    "database_per_request": (CandidateServer.options(func_or_class=DatabasePerRequest), old_path),
                    "unbatched": (CandidateServer, unbatched)}
        if args.replicas > 1:
            variants[f"memory_{args.replicas}_replicas"] = (CandidateServer.options(num_replicas=args.replicas),
                                                            settings)
        with deployments(variants) as handles:
            calls = {name: candidates_call(handle) for name, handle in handles.items()}
            print(json.dumps(asyncio.run(compare(calls, users, args.requests, args.repeats, "candidates",
                                                 baseline="database_per_request")), indent=2))


if __name__ == "__main__":
    main()
