"""How the fused order grows with the ranker's training examples: for each count and seed, a ranker trained on
LRURec's candidates of one saved LRURec, its fusion weight tuned on validation users, and the test users' NDCG@10
and Recall@10 of LRURec alone, the LLM alone and the fused order (the `metrics.json` of `tandem train ranker`).
One JSON line per run as it ends, then a summary table.

    .venv/bin/python benchmarks/ranker_curve.py --lrurec var/lrurec-ml --examples 256 1024 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tandem.settings import Settings
from training.options import RankerOptions
from training.ranker import RankerRequest, run_ranker_training


def one_run(settings: Settings, lrurec: Path, examples: int, seed: int, users: int | None, negatives: str) -> dict:
    started, data = time.monotonic(), settings.data_dir / "ml-latest-small"
    with tempfile.TemporaryDirectory() as output:
        metrics = run_ranker_training(settings, RankerRequest(
            options=RankerOptions(examples=examples, seed=seed, eval_users=users, negatives=negatives),
            ratings=data / "ratings.csv", items=data / "movies.csv", lrurec=lrurec, output=Path(output) / "ranker"))
    test = metrics["test"]
    return {"examples": examples, "seed": seed, "negatives": negatives, "users": test["users"],
            "weight": metrics["fusion"]["weight"],
            **{f"{order}_ndcg10": test[order]["NDCG@10"] for order in ("lrurec", "llm", "fused")},
            **{f"{order}_recall10": test[order]["Recall@10"] for order in ("lrurec", "llm", "fused")},
            "seconds": round(time.monotonic() - started)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lrurec", type=Path, required=True, help="a saved LRURec folder (tandem train lrurec --output)")
    p.add_argument("--examples", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-users", type=int, default=None, help="validation and test users each; all when omitted")
    p.add_argument("--negatives", choices=["lrurec", "random"], default="lrurec")
    args = p.parse_args()
    settings = Settings()
    rows = []
    for examples in args.examples:
        for seed in args.seeds:
            rows.append(one_run(settings, args.lrurec, examples, seed, args.eval_users, args.negatives))
            print(json.dumps(rows[-1]), flush=True)
    print("| examples | seeds | LRURec NDCG@10 | LLM NDCG@10 | fused NDCG@10 | fused ≥ LRURec | weights | min/run |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for examples in args.examples:
        runs = [r for r in rows if r["examples"] == examples]
        median = {k: statistics.median(r[k] for r in runs) for k in ("lrurec_ndcg10", "llm_ndcg10", "fused_ndcg10")}
        wins = sum(r["fused_ndcg10"] >= r["lrurec_ndcg10"] for r in runs)
        weights = ", ".join(f"{r['weight']:g}" for r in runs)
        print(f"| {examples} | {len(runs)} | {median['lrurec_ndcg10']:.4f} | {median['llm_ndcg10']:.4f} "
              f"| {median['fused_ndcg10']:.4f} | {wins}/{len(runs)} | {weights} "
              f"| {statistics.median(r['seconds'] for r in runs) / 60:.1f} |")


if __name__ == "__main__":
    main()
