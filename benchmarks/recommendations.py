"""Rankings per second and p50/p99 latency of `/v1/recommendations` at concurrency 1, 8 and 32, against the
seed projects' way: Hugging Face transformers scoring one request at a time, same model, adapter and prompts.

Needs the stack with MovieLens, an active LRURec and an active ranker adapter, and an LLM time budget long
enough for the queue at concurrency 32 (past it the endpoint answers in LRURec's order, which this counts
as an error):

    .venv/bin/tandem db import movielens && .venv/bin/tandem train lrurec && .venv/bin/tandem train ranker
    TANDEM_RANKER_TIMEOUT_S=600 make run
    .venv/bin/python benchmarks/recommendations.py --requests 48 --repeats 3

Both paths start from the stack's LRURec candidates (`/v1/candidates`, the same first stage); the baseline
then builds the same verbalizer prompt and runs one transformers forward pass with the same adapter (peft)
in this process, behind a lock, so it serves one request at a time as a one-worker Flask server does.
Its HTTP hop is left out, which flatters it. The variants alternate; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
from collections.abc import Awaitable, Callable

import httpx
import torch
from closed_loop import measure

from models.verbalizer.fusion import order_by
from models.verbalizer.prompts import Verbalizer, adapter_config
from models.verbalizer.scoring import label_logprobs
from ops.stack import api_headers
from tandem.settings import Settings


class OneAtATime:
    """The baseline server: candidates from the stack, then one transformers forward pass, one request at a time."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient, adapter: str):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings, self.client = settings, client
        self.tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
        model = AutoModelForCausalLM.from_pretrained(settings.llm_path, dtype=torch.bfloat16)
        self.model = PeftModel.from_pretrained(model, adapter).eval()
        self.verbalizer = Verbalizer(self.tokenizer, adapter_config(adapter) or settings.verbalizer)
        self.lock = threading.Lock()

    def _rank(self, history: list[str], candidates: list[str]) -> list[int]:
        with self.lock:
            prompt = self.verbalizer.prompt_ids(history, candidates)
            labels = self.verbalizer.label_ids[: len(candidates)]
            (scores,) = label_logprobs(self.model, [prompt], labels, self.tokenizer.eos_token_id)
        return order_by(scores)

    async def __call__(self, user: str, k: int) -> None:
        found = (await self.client.post("/v1/candidates", json={
            "user_id": user, "k": self.settings.ranker_candidates,
            "include_history": self.settings.verbalizer_max_history,
        })).raise_for_status().json()
        history = [h["title"] for h in found["history"]]
        order = await asyncio.to_thread(self._rank, history, [c["title"] for c in found["candidates"]])
        assert len(order[:k]) == k


def served(client: httpx.AsyncClient) -> Callable[[str, int], Awaitable[None]]:
    async def call(user: str, k: int) -> None:
        body = (await client.post("/v1/recommendations", json={"user_id": user, "k": k})).raise_for_status().json()
        assert body["ordered_by"] == "llm", body.get("fallback_reason")

    return call


async def main(args: argparse.Namespace) -> None:
    settings = Settings()
    random.seed(0)
    users = [str(u) for u in range(1, 611)]  # MovieLens latest-small
    async with httpx.AsyncClient(base_url=args.url, timeout=600,
                                 limits=httpx.Limits(max_connections=64), headers=api_headers()) as client:
        adapter = args.adapter or (await client.get("/readyz")).json()["models"]["ranker"]
        if adapter is None:
            raise SystemExit("no active ranker adapter: run `tandem train ranker` first")
        if not args.adapter:
            adapter = str(settings.artifacts_dir / "ranker" / adapter)
        variants = {"vllm_serve": served(client), "hf_one_at_a_time": OneAtATime(settings, client, adapter)}
        for call in variants.values():  # warm both paths before timing
            await call("1", 10)
        rounds: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for concurrency in (1, 8, 32):
                n = args.requests if concurrency > 1 else max(4, args.requests // 4)
                for name, call in variants.items():
                    result = await measure(lambda user, call=call: call(user, 10), users, concurrency, n, "rankings")
                    rounds.setdefault(f"{name}@{concurrency}", []).append(result)
                    print(f"{name} @ {concurrency}: {result}", file=sys.stderr, flush=True)
    table = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in rounds.items()}
    for c in (1, 8, 32):
        table[f"ratio@{c}"] = round(table[f"vllm_serve@{c}"]["rankings_per_s"]
                                    / table[f"hf_one_at_a_time@{c}"]["rankings_per_s"], 2)
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--requests", type=int, default=64, help="requests per round at concurrency 8 and 32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--adapter", help="adapter folder for the baseline (default: the active ranker version)")
    asyncio.run(main(p.parse_args()))
