"""Candidates per second and p50/p99 latency at concurrency 1, 8 and 32: histories and titles from memory (kept
current by NOTIFY), against the path as it was when issue 18 was filed (the whole history and the titles read from
PostgreSQL per request, a pooled connection held across the batched forward pass, a 5 ms batch wait, Serve's
default mode), that path in the stack's Serve mode, and no batching.

Needs an active LRURec version in the database:

    .venv/bin/tandem db import movielens && .venv/bin/tandem train lrurec
    .venv/bin/python benchmarks/candidates.py

All are the real `CandidateServer` deployment, called through Serve handles in one run, alternating rounds
(`closed_loop.benchmark`); "as_filed" and "database_per_request" override how a request reads its history and
titles and run the forward pass in a thread, as that path did, with its 5 ms batch wait; "unbatched" has
max_batch_size 1. Users are drawn at random from all 610, each read once before a round. `--replicas N` adds the
memory path on N replicas, each a process of its own.
"""

from __future__ import annotations

import argparse

from closed_loop import benchmark
from ray import serve

from db.errors import NotFound
from db.interactions import titles, user_history
from db.server import database_url
from deployments.protocol.candidates import Candidate, CandidateRequest, CandidateResponse
from deployments.protocol.service_error import ServiceError
from deployments.servers.batching import per_model
from deployments.servers.candidates import CandidateServer
from tandem.settings import Settings


class DatabasePerRequest(CandidateServer.func_or_class):
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def rank_batch(self, requests: list[tuple]) -> list:
        self.batch_sizes.observe(len(requests))
        return await per_model(requests, lambda r: r[0], lambda model, rows: model.rank(  # in a thread, as it was
            [r[1] for r in rows], [r[3] for r in rows], [r[2] for r in rows]), in_thread=True)

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
    p.add_argument("--only", help="run one round of these variants (comma-separated) and print it")
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        unbatched = settings.model_copy(update={"candidates_max_batch_size": 1})
        old_path = settings.model_copy(update={"candidates_batch_wait_ms": 5.0})  # its wait, as it was then
        database_per_request = CandidateServer.options(func_or_class=DatabasePerRequest)
        variants = {"memory": (CandidateServer, settings),
                    "as_filed": (database_per_request, old_path),
                    "database_per_request": (database_per_request, old_path),
                    "unbatched": (CandidateServer, unbatched)}
        if args.replicas > 1:
            variants[f"memory_{args.replicas}_replicas"] = (CandidateServer.options(num_replicas=args.replicas),
                                                            settings)
        benchmark(variants, {"as_filed": "default"}, candidates_call, [str(u) for u in range(1, 611)],
                  requests=args.requests, repeats=args.repeats, unit="candidates", baseline="as_filed",
                  database_url=url, only=args.only)


if __name__ == "__main__":
    main()
