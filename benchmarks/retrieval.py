"""/v1/retrieve's deployment: queries per second and p50/p99 at concurrency 1, 8 and 32, with @serve.batch
against without, hybrid mode (DPR question encoding, FAISS, BM25, fusion).

Needs KorQuAD and an active index in the database:

    .venv/bin/tandem db import-korquad && .venv/bin/tandem train dpr
    .venv/bin/python benchmarks/retrieval.py

Both variants are the real `RetrieverServer` deployment over the same collection, called through Serve
handles in one run, alternating; "without" has max_batch_size = 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from closed_loop import batched_vs_unbatched, two_deployments

from db.server import database_url
from deployments.retriever import RetrieverServer
from deployments.retriever_protocol import RetrieveRequest
from deployments.service_error import ServiceError
from tandem.jobs.retrieval import read_collection
from tandem.settings import Settings


def retrieve_call(handle, mode: str):
    async def call(question: str) -> None:
        result = await handle.retrieve.remote(RetrieveRequest(query=question, top_k=10, mode=mode))
        assert not isinstance(result, ServiceError), result
        assert result.mode == mode, result.fallback

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid")
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        questions = [r.question for r in read_collection(url).questions]
        unbatched = settings.model_copy(update={"retriever_max_batch_size": 1})
        with two_deployments(RetrieverServer, settings, unbatched) as handles:
            calls = {name: retrieve_call(handle, args.mode) for name, handle in handles.items()}
            print(json.dumps(asyncio.run(batched_vs_unbatched(calls, questions, args.requests, args.repeats,
                                                              "queries")), indent=2))


if __name__ == "__main__":
    main()
