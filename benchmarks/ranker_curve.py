"""How the fused order grows with the ranker's training examples: for each count and seed, a ranker trained on
LRURec's candidates of one saved LRURec, its fusion weight fitted on validation users, and the test users' NDCG@10
and Recall@10 of LRURec alone, the LLM alone and the fused order (the `metrics.json` of `tandem train ranker`).
One JSON line per run as it ends, then a summary table of every run in the output folder.

Each run keeps its adapter and metrics in `<out>/<negatives>-<examples>-<seed>/`; a run found there is not run
again, and an interrupted one resumes from its last checkpoint, so a long curve can be measured a piece at a time.

    .venv/bin/python benchmarks/ranker_curve.py --lrurec var/lrurec-ml --examples 256 1024 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tandem.settings import Settings
from training.options import RankerOptions
from training.ranker import RankerRequest, run_ranker_training


def one_run(settings: Settings, lrurec: Path, options: RankerOptions, output: Path) -> None:
    started, data = time.monotonic(), settings.data_dir / "ml-latest-small"
    metrics = run_ranker_training(settings, RankerRequest(options=options, ratings=data / "ratings.csv",
                                                          items=data / "movies.csv", lrurec=lrurec, output=output))
    (output / "metrics.json").write_text(json.dumps({**metrics, "wall_seconds": round(time.monotonic() - started)}))


def row_of(metrics: dict) -> dict:
    test, fusion = metrics["test"], metrics["fusion"]
    return {"examples": metrics["examples"], "seed": metrics["train"]["seed"], "negatives": metrics["negatives"],
            "users": test["users"], "weight": fusion["weight"], "fit_users": fusion["users"],
            "lr_statistic": fusion["lr_statistic"],
            **{f"{order}_ndcg10": test[order]["NDCG@10"] for order in ("lrurec", "llm", "fused")},
            **{f"{order}_recall10": test[order]["Recall@10"] for order in ("lrurec", "llm", "fused")},
            "seconds": metrics["wall_seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lrurec", type=Path, required=True, help="a saved LRURec folder (tandem train lrurec --output)")
    p.add_argument("--examples", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-users", type=int, default=None, help="validation and test users each; all when omitted")
    p.add_argument("--negatives", choices=["lrurec", "random"], default="lrurec")
    p.add_argument("--out", type=Path, default=Path("var/bench/ranker_curve"), help="one folder per run")
    args = p.parse_args()
    settings = Settings()
    for examples in args.examples:
        for seed in args.seeds:
            output = args.out / f"{args.negatives}-{examples}-{seed}"
            if not (output / "metrics.json").exists():
                options = RankerOptions(examples=examples, seed=seed, eval_users=args.eval_users,
                                        negatives=args.negatives)
                one_run(settings, args.lrurec, options, output)
                print(json.dumps(row_of(json.loads((output / "metrics.json").read_text()))), flush=True)
    rows = [row_of(json.loads(f.read_text())) for f in sorted(args.out.glob("*/metrics.json"))]
    print("| negatives | examples | seeds | users | LRURec NDCG@10 | LLM NDCG@10 | fused NDCG@10 | fused ≥ LRURec "
          "| weights | min/run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for negatives, examples, users in sorted({(r["negatives"], r["examples"], r["users"]) for r in rows}):
        runs = [r for r in rows if (r["negatives"], r["examples"], r["users"]) == (negatives, examples, users)]
        median = {k: statistics.median(r[k] for r in runs) for k in ("lrurec_ndcg10", "llm_ndcg10", "fused_ndcg10")}
        wins = sum(r["fused_ndcg10"] >= r["lrurec_ndcg10"] for r in runs)
        weights = ", ".join(f"{r['weight']:g}" for r in runs)
        print(f"| {negatives} | {examples} | {len(runs)} | {users} | {median['lrurec_ndcg10']:.4f} "
              f"| {median['llm_ndcg10']:.4f} | {median['fused_ndcg10']:.4f} | {wins}/{len(runs)} | {weights} "
              f"| {statistics.median(r['seconds'] for r in runs) / 60:.1f} |")


if __name__ == "__main__":
    main()
