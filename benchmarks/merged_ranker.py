"""One ranking (the verbalizer's label log-probabilities, one forward pass) through vLLM with the ranker as a LoRA
adapter, against the same adapter merged into a copy of the base weights in an engine without LoRA: alone and
eight at once, in one run. Needs an active ranker adapter (`tandem train ranker`).

    .venv/bin/python benchmarks/merged_ranker.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from db import registry
from db.server import database_url
from deployments.servers.llm_engine import LLMEngine
from models.lora import merged_copy
from models.verbalizer.prompts import Verbalizer, adapter_config
from tandem.artifacts import local_version, node_cache
from tandem.settings import Settings


async def active_ranker(settings: Settings, url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version = await registry.active_version(conn, "ranker")
        if version is None:
            raise LookupError("no active ranker adapter: tandem train ranker")
        return (await local_version(version, node_cache(settings), conn)).artifact_path
    finally:
        await conn.close()


async def timings(engine: LLMEngine, prompt: list[int], labels: list[int], lora, rounds: int) -> dict:
    alone, together = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await engine.label_logprobs(prompt, labels, lora)
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(engine.label_logprobs(prompt, labels, lora) for _ in range(8)))
        together.append(time.perf_counter() - started)
    return {"alone_ms": round(1000 * statistics.median(alone), 1),
            "eight_at_once_per_s": round(8 / statistics.median(together), 2)}


async def main(rounds: int) -> dict:
    settings = Settings()
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        adapter = await active_ranker(settings, url)
    titles = [f"Movie number {i} (19{70 + i})" for i in range(30)]
    results = {}
    engine = LLMEngine(settings, ray_metrics=False)
    verbalizer = Verbalizer(engine.tokenizer, adapter_config(adapter) or settings.verbalizer)
    prompt, labels = verbalizer.prompt_ids(titles[:10], titles[10:]), verbalizer.label_ids[:20]
    await engine.load_adapter("ranker", adapter)
    results["lora"] = await timings(engine, prompt, labels, engine.adapters["ranker"], rounds)
    engine.shutdown()
    with tempfile.TemporaryDirectory() as folder:
        merged = merged_copy(settings.llm_path, adapter, Path(folder) / "merged")
        engine = LLMEngine(settings.model_copy(update={"llm_model": str(merged)}), ray_metrics=False, lora=False)
        await engine.warm_up()
        results["merged"] = await timings(engine, prompt, labels, None, rounds)
        engine.shutdown()
    results["prompt_tokens"] = len(prompt)
    results["merged_over_lora"] = {
        "alone": round(results["lora"]["alone_ms"] / results["merged"]["alone_ms"], 2),
        "eight_at_once": round(results["merged"]["eight_at_once_per_s"] / results["lora"]["eight_at_once_per_s"], 2)}
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(asyncio.run(main(parser.parse_args().rounds))))
