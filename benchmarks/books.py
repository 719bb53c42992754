"""The book recommender end to end over HTTP: quality of the `rag` and `prompt` methods side by side, then
requests per second and p50/p99 latency at concurrency 1, 8 and 32.

Quality, for every fixture reader (tests/fixtures/book_readers.json) and answer set (the reader's job as the
job answer): the share of recommended books that exist in the catalogue, the share that avoid the reader's
avoided topics and books read, a 0-5 relevance score from the LLM judge (`/v1/books/judgements`: a fixed
rubric, a separate call; the most likely digit and the probability-weighted mean), the share of books the
LLM chose (the rest are filled from the search order), and prompt and completion tokens per request.

Needs the stack with the catalogue, and an LLM time budget long enough for the queue at concurrency 32:

    .venv/bin/tandem db import-books && TANDEM_BOOKS_TIMEOUT_S=900 make run
    .venv/bin/python benchmarks/books.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

import httpx
from closed_loop import measure

from models.books.catalogue import CatalogueBook, avoided_topic
from ops.stack import api_headers

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "book_readers.json"
NO_REASON = "(이유 없음)"


async def load_readers(client: httpx.AsyncClient, readers: list[dict]) -> None:
    (await client.post("/v1/users", json={"users": [r["user"] for r in readers]})).raise_for_status()
    for r in readers:
        user = r["user"]["external_id"]
        (await client.post("/v1/reading-history", json={"user_id": user, "entries": r["history"]})).raise_for_status()
        (await client.put("/v1/reading-preferences", json={"user_id": user, **r["preferences"]})).raise_for_status()


async def catalogue_book(client: httpx.AsyncClient, book_id: str) -> CatalogueBook | None:
    r = await client.get(f"/v1/books/{book_id}")
    if r.status_code == 404:
        return None
    b = r.raise_for_status().json()
    return CatalogueBook(b["external_id"], b["title"], b["author"], tuple(b["categories"]), b["introduction"])


async def one_case(client: httpx.AsyncClient, reader: dict, answers: dict, method: str, n: int) -> dict:
    user = reader["user"]["external_id"]
    started = time.perf_counter()
    r = await client.post("/v1/books/recommendations", json={"user_id": user, "answers": answers, "method": method,
                                                             "n": n})
    seconds = time.perf_counter() - started
    body = r.raise_for_status().json()
    read = {e["book_id"] for e in (await client.get("/v1/reading-history", params={"user_id": user})).json()
            if e["book_id"]}
    avoid = reader["preferences"]["avoid_topics"]
    books = [await catalogue_book(client, b["book_id"]) for b in body["books"]]
    judged = await client.post("/v1/books/judgements", json={
        "user_id": user, "answers": answers,
        "books": [{"book_id": b["book_id"], "reason": b["reason"] or NO_REASON} for b in body["books"]]})
    usage = body["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
    return {
        "books": len(books),
        "in_catalogue": sum(b is not None for b in books),
        "policy_ok": sum(b is not None and b.id not in read and avoided_topic(b, avoid) is None for b in books),
        "by_llm": sum(b["chosen_by"] == "llm" for b in body["books"]),
        "score": judged.json()["score"] if judged.status_code == 200 else None,
        "expected": judged.json()["expected_score"] if judged.status_code == 200 else None,
        "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
        "llm_answered": body["model"] is not None, "seconds": seconds,
    }


def summary(cases: list[dict]) -> dict:
    books = sum(c["books"] for c in cases)
    scores = [c["score"] for c in cases if c["score"] is not None]
    return {
        "requests": len(cases),
        "in_catalogue": round(sum(c["in_catalogue"] for c in cases) / books, 4),
        "avoid_read_and_topics": round(sum(c["policy_ok"] for c in cases) / books, 4),
        "chosen_by_llm": round(sum(c["by_llm"] for c in cases) / books, 4),
        "llm_answered": round(sum(c["llm_answered"] for c in cases) / len(cases), 4),
        "judge_expected_mean": round(statistics.mean(c["expected"] for c in cases if c["expected"] is not None), 3),
        "judge_scores": {s: scores.count(s) for s in range(6)},
        "prompt_tokens_mean": round(statistics.mean(c["prompt_tokens"] for c in cases), 1),
        "completion_tokens_mean": round(statistics.mean(c["completion_tokens"] for c in cases), 1),
        "seconds_p50": round(statistics.median(c["seconds"] for c in cases), 2),
    }


async def main(args: argparse.Namespace) -> dict:
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    cases = [(r, {**a, "job": r["user"]["job"]}) for a in fixture["answer_sets"] for r in fixture["readers"]]
    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout, headers=api_headers()) as client:
        await load_readers(client, fixture["readers"])
        limit = asyncio.Semaphore(args.parallel)

        async def run(reader: dict, answers: dict, method: str) -> dict:
            async with limit:
                return await one_case(client, reader, answers, method, args.n)

        report: dict = {"cases": len(cases), "n": args.n}
        for method in ("rag", "prompt") if args.part in ("all", "quality") else ():
            report[method] = summary(await asyncio.gather(*(run(r, a, method) for r, a in cases)))
            print(json.dumps({method: report[method]}, ensure_ascii=False), flush=True)

        async def call(case: tuple[dict, dict]) -> None:
            reader, answers = case
            r = await client.post("/v1/books/recommendations", json={
                "user_id": reader["user"]["external_id"], "answers": answers, "method": "rag", "n": args.n})
            # An answer in search order (the LLM failed or ran out of time) is not the pipeline being measured.
            assert r.raise_for_status().json()["model"] is not None, r.json()["fallback"]

        random.seed(0)
        report["load"] = {}
        for concurrency in (1, 8, 32) if args.part in ("all", "load") else ():
            requests = max(args.requests // 4, concurrency) if concurrency == 1 else max(args.requests, concurrency)
            report["load"][f"c{concurrency}"] = await measure(call, cases, concurrency, requests, "requests")
            print(json.dumps({f"c{concurrency}": report["load"][f"c{concurrency}"]}), flush=True)
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--parallel", type=int, default=8, help="quality cases in flight at once")
    p.add_argument("--requests", type=int, default=32, help="requests per load level (a quarter at concurrency 1)")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--part", choices=["all", "quality", "load"], default="all")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2, ensure_ascii=False))
