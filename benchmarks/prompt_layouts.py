"""Ranker adapters trained on different prompt layouts, on the same test users: NDCG@10 and Recall@10 of each,
their paired difference per user with a bootstrap 95% interval, and the prompt's tokens.

A prompt change is a model change: each adapter is scored with the prompt it was trained on (saved in its
`metrics.json`). Train one adapter per layout with the same examples and seed, then compare them:

    D=../shared/data/ml-latest-small
    for L in llamarec compact; do TANDEM_VERBALIZER_LAYOUT=$L .venv/bin/tandem train ranker --ratings $D/ratings.csv \\
        --items $D/movies.csv --lrurec <LRURec folder> --output /tmp/layout/$L --examples 256 --eval-users 300; done
    .venv/bin/python benchmarks/prompt_layouts.py --lrurec <LRURec folder> /tmp/layout/llamarec /tmp/layout/compact
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from db.files.ratings_csv import read_items
from models.lora import pad_id_of
from models.lrurec.checkpoint import Checkpoint
from models.lrurec.data import build_sequences
from models.verbalizer.fusion import order_by
from models.verbalizer.prompts import Verbalizer, adapter_config
from models.verbalizer.scoring import candidate_metrics
from models.verbalizer.train import ranker_logprobs
from tandem.settings import Settings
from training.lrurec import events_from_csv
from training.ranker import lrurec_cases


def per_user_ndcg(cases, orders) -> list[float]:
    return [candidate_metrics([c], [o])["NDCG@10"] for c, o in zip(cases, orders, strict=True)]


def bootstrap(diffs: list[float], rounds: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds)]


def lrurec_test_cases(lrurec: Path, ratings: Path, items: Path, k: int, users: int) -> tuple[list, dict[int, str]]:
    """The first `users` test users' cases with LRURec's `k` candidates, and each item's title by LRURec index."""
    checkpoint = Checkpoint.load(lrurec)
    seqs = build_sequences(events_from_csv(ratings), item_ids=checkpoint.item_ids)
    info = read_items(items)
    titles = {n: info[i].title if i in info else i for n, i in enumerate(checkpoint.item_ids, start=1)}
    return lrurec_cases(checkpoint, seqs, "test", k, users), titles


def main() -> None:
    settings = Settings()
    data = settings.data_dir / "ml-latest-small"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adapters", type=Path, nargs="+", help="adapter folders; the first is the baseline")
    p.add_argument("--lrurec", type=Path, required=True)
    p.add_argument("--ratings", type=Path, default=data / "ratings.csv")
    p.add_argument("--items", type=Path, default=data / "movies.csv")
    p.add_argument("--eval-users", type=int, default=300)
    args = p.parse_args()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cases, titles = lrurec_test_cases(args.lrurec, args.ratings, args.items, settings.ranker_candidates,
                                      args.eval_users)
    tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
    report, per_user = {"users": len(cases)}, {}
    report["lrurec"] = candidate_metrics(cases, [list(range(len(c.candidates))) for c in cases])
    for folder in args.adapters:
        verbalizer = Verbalizer(tokenizer, adapter_config(folder) or settings.verbalizer)
        base = AutoModelForCausalLM.from_pretrained(settings.llm_path, dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(base, folder).eval()
        orders = [order_by(lp) for lp in ranker_logprobs(model, verbalizer, cases, titles, pad_id_of(tokenizer), 8,
                                                         progress=True)]
        tokens = [len(verbalizer.prompt_ids([titles[h] for h in c.history], [titles[x] for x in c.candidates]))
                  for c in cases if c.candidates]
        per_user[folder.name] = per_user_ndcg(cases, orders)
        report[folder.name] = {**candidate_metrics(cases, orders), "layout": verbalizer.cfg.layout,
                               "prompt_tokens_mean": round(sum(tokens) / len(tokens), 1)}
    baseline, *others = [f.name for f in args.adapters]
    for name in others:
        diffs = [b - a for a, b in zip(per_user[baseline], per_user[name], strict=True)]
        low, high = bootstrap(diffs)
        report[f"{name} - {baseline}"] = {"NDCG@10": round(sum(diffs) / len(diffs), 6),
                                          "ci95": [round(low, 6), round(high, 6)],
                                          "users_differing": sum(d != 0 for d in diffs)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
