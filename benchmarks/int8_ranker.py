"""The ranker merged into the base weights in bf16 against the same merge written as int8 weights with int8
activations (W8A8, `models/int8.py`), eager and compiled, each in a vLLM engine of its own, on the same test users
in one run: NDCG@10 of each with the paired difference per user against bf16 (bootstrap 95% interval), how often
they pick bf16's first candidate, and rankings/s with `--concurrency` distinct prompts in flight (no prefix
cache), rounds alternating, with paired per-round ratios.

    .venv/bin/python benchmarks/int8_ranker.py --lrurec <LRURec folder> --adapter <ranker folder> --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from prompt_layouts import bootstrap, lrurec_test_cases, per_user_ndcg

from deployments.servers.llm_engine import LLMEngine
from models.lora import merged_copy
from models.verbalizer.fusion import order_by
from models.verbalizer.prompts import Verbalizer, adapter_config
from models.verbalizer.scoring import candidate_metrics
from tandem.settings import Settings

# name: (int8, compiled); bf16 eager is how the stack served a merged ranker before int8.
VARIANTS = {"bf16": (False, False), "int8": (True, False), "int8 compiled": (True, True)}


async def rank_all(engine: LLMEngine, prompts: list[list[int]], labels: list[int], concurrency: int
                   ) -> tuple[list[list[float]], float]:
    """Every prompt's label log-probabilities, and the rankings per second."""
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: list[int]) -> list[float]:
        async with gate:
            return await engine.label_logprobs(prompt, labels, None)

    started = time.perf_counter()
    scores = await asyncio.gather(*(one(p) for p in prompts))
    return scores, len(prompts) / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> dict:
    settings = Settings().model_copy(update={"llm_enable_prefix_caching": False})
    cases, titles = lrurec_test_cases(args.lrurec, args.ratings, args.items, settings.ranker_candidates,
                                      args.eval_users)
    cases = [c for c in cases if c.candidates]
    engines: dict[str, LLMEngine] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, (int8, compiled) in VARIANTS.items():
            folder = merged_copy(settings.llm_path, args.adapter, Path(tmp) / ("int8" if int8 else "bf16"), int8)
            engines[variant] = LLMEngine(settings.model_copy(update={
                "llm_model": str(folder), "llm_enforce_eager": not compiled}), ray_metrics=False, lora=False)
            await engines[variant].warm_up()
        verbalizer = Verbalizer(engines["bf16"].tokenizer, adapter_config(args.adapter) or settings.verbalizer)
        prompts = [verbalizer.prompt_ids([titles[h] for h in c.history], [titles[x] for x in c.candidates])
                   for c in cases]
        labels = verbalizer.label_ids[: settings.ranker_candidates]
        scores: dict[str, list[list[float]]] = {}
        rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                scores[variant], rate = await rank_all(engines[variant], prompts, labels, args.concurrency)
                rates[variant].append(rate)
        for engine in engines.values():
            engine.shutdown()
    orders = {v: [order_by(s) for s in scores[v]] for v in VARIANTS}
    ndcg = {v: per_user_ndcg(cases, orders[v]) for v in VARIANTS}
    report = {"users": len(cases), "prompt_tokens_mean": round(statistics.mean(map(len, prompts)), 1),
              "lrurec": candidate_metrics(cases, [list(range(len(c.candidates))) for c in cases])}
    for v in VARIANTS:
        report[v] = {**candidate_metrics(cases, orders[v]), "rankings_per_s": round(statistics.median(rates[v]), 2),
                     "rounds": [round(r, 2) for r in rates[v]]}
        if v == "bf16":
            continue
        diffs = [b - a for a, b in zip(ndcg["bf16"], ndcg[v], strict=True)]
        low, high = bootstrap(diffs)
        ratios = [x / b for b, x in zip(rates["bf16"], rates[v], strict=True)]
        report[f"{v} - bf16"] = {
            "NDCG@10": round(statistics.mean(diffs), 6), "ci95": [round(low, 6), round(high, 6)],
            "users_differing": sum(d != 0 for d in diffs),
            "same_first_choice": round(statistics.mean(
                o[0] == p[0] for o, p in zip(orders["bf16"], orders[v], strict=True)), 3),
            "max_abs_logprob_diff": round(max(abs(x - y) for s, t in zip(scores["bf16"], scores[v], strict=True)
                                              for x, y in zip(s, t, strict=True)), 3),
            "rankings_per_s_ratio": {"median": round(statistics.median(ratios), 2),
                                     "range": [round(min(ratios), 2), round(max(ratios), 2)]}}
    return report


if __name__ == "__main__":
    data = Settings().data_dir / "ml-latest-small"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrurec", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, required=True, help="a ranker adapter folder")
    parser.add_argument("--ratings", type=Path, default=data / "ratings.csv")
    parser.add_argument("--items", type=Path, default=data / "movies.csv")
    parser.add_argument("--eval-users", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
