"""Completion throughput through the whole stack (HTTP → Serve → vLLM), one client versus many.

The baseline is the same requests sent one at a time in the same run; the ratio shows what vLLM's
continuous batching gives behind Serve. Start the stack first (`make run`), then:

    .venv/bin/python benchmarks/completions.py --requests 32 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from ops.stack import api_headers

PROMPT = "Write a short story about a customs officer who inspects a shipment of household goods. Once upon a time,"


async def one(client: httpx.AsyncClient, max_tokens: int, seed: int) -> tuple[float, int]:
    started = time.perf_counter()
    r = await client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": max_tokens, "seed": seed})
    r.raise_for_status()
    return time.perf_counter() - started, r.json()["usage"]["completion_tokens"]


async def run(url: str, requests: int, concurrency: int, max_tokens: int) -> dict:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=api_headers()) as client:
        await one(client, 4, 0)  # warm-up

        async def bounded(i: int) -> tuple[float, int]:
            async with limit:
                return await one(client, max_tokens, i)

        started = time.perf_counter()
        results = await asyncio.gather(*(bounded(i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies = [lat for lat, _ in results]
    tokens = sum(n for _, n in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "median_latency_s": round(statistics.median(latencies), 3),
        "tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(requests / wall, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported")
    args = p.parse_args()
    rounds: dict[int, list[dict]] = {1: [], args.concurrency: []}
    for _ in range(args.repeats):
        for c in rounds:
            rounds[c].append(asyncio.run(run(args.url, args.requests, c, args.max_tokens)))
    summary = {
        c: {k: statistics.median(r[k] for r in rs) for k in ("median_latency_s", "tokens_per_s", "requests_per_s")}
        for c, rs in rounds.items()
    }
    base, batched = summary[1], summary[args.concurrency]
    print(
        json.dumps(
            {
                "sequential": base,
                f"concurrency_{args.concurrency}": batched,
                "throughput_ratio": round(batched["tokens_per_s"] / base["tokens_per_s"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
