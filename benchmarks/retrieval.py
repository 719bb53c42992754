"""/v1/retrieve's deployment: queries per second and p50/p99 at concurrency 1, 8 and 32, hybrid mode (DPR question
encoding, FAISS, BM25, fusion): the whole batch searched at once, against the path as it was when issue 18 was filed
(the batch encoded at once but searched question by question, a 5 ms batch wait, Serve's default mode), that path in
the stack's Serve mode, and no batching.

Needs KorQuAD and an active index in the database:

    .venv/bin/tandem db import-korquad && .venv/bin/tandem train dpr
    .venv/bin/python benchmarks/retrieval.py

All are the real `RetrieverServer` deployment over the same collection, called through Serve handles in one run,
alternating rounds (`closed_loop.benchmark`); "as_filed" and "question_by_question" override how a batch is
searched and keep that path's 5 ms batch wait; "unbatched" has max_batch_size 1.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from closed_loop import benchmark
from ray import serve

from db.server import database_url
from deployments.protocol.retrieval import RetrieveRequest
from deployments.protocol.service_error import ServiceError
from deployments.servers.retriever import RetrieverServer, Search
from tandem.settings import Settings
from training.retrieval import read_collection


class QuestionByQuestion(RetrieverServer.func_or_class):
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def search_batch(self, searches: list[Search]) -> list:
        self.batch_sizes.observe(len(searches))
        return await asyncio.to_thread(self._one_by_one, searches)  # in a thread, as it was

    @staticmethod
    def _one_by_one(searches: list[Search]) -> list:
        results = [None] * len(searches)
        for retriever in {id(s.retriever): s.retriever for s in searches}.values():
            rows = [i for i, s in enumerate(searches) if s.retriever is retriever]
            dense_rows = [i for i in rows if searches[i].query.mode != "sparse"]
            vectors = retriever.encode([searches[i].query.question for i in dense_rows]) if dense_rows else None
            vector_of = {i: vectors[n: n + 1] for n, i in enumerate(dense_rows)}
            for i in rows:
                results[i] = retriever.search_many([searches[i].query], vector_of.get(i))[0]
        return results


def retrieve_call(handle, mode: str):
    async def call(question: str) -> None:
        result = await handle.retrieve.remote(RetrieveRequest(query=question, top_k=10, mode=mode))
        assert not isinstance(result, ServiceError), result
        assert result.mode == mode, result.fallback

    return call


def wait_until_loaded(handles: dict, timeout_s: float = 300) -> None:
    """Every variant has its collection and index loaded (a replica that could not read them at start-up retries
    at its next poll)."""
    deadline = time.monotonic() + timeout_s
    for name, handle in handles.items():
        while not handle.status.remote().result().get("indexed_passages"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never loaded the passage collection and its index")
            time.sleep(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid")
    p.add_argument("--only", help="run one round of these variants (comma-separated) and print it")
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        questions = [r.question for r in read_collection(url).questions]
        unbatched = settings.model_copy(update={"retriever_max_batch_size": 1})
        old_path = settings.model_copy(update={"retriever_batch_wait_ms": 5.0})  # its wait, as it was then
        question_by_question = RetrieverServer.options(func_or_class=QuestionByQuestion)
        variants = {"batched": (RetrieverServer, settings),
                    "as_filed": (question_by_question, old_path),
                    "question_by_question": (question_by_question, old_path),
                    "unbatched": (RetrieverServer, unbatched)}
        benchmark(variants, {"as_filed": "default"}, lambda handle: retrieve_call(handle, args.mode), questions,
                  requests=args.requests, repeats=args.repeats, unit="queries", baseline="as_filed",
                  database_url=url, only=args.only, ready=wait_until_loaded)


if __name__ == "__main__":
    main()
