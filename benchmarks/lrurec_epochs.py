"""LRURec's test figures at every epoch, not only at the epoch early stopping picks: how far the level and the
draw of one epoch differ. The same training as `tandem train lrurec` (same seed, same order of batches),
optionally with the weights averaged from an epoch on, or the learning rate decayed to zero (cosine).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lrurec_epochs.py --seed 1 --epochs 45 > seed1.jsonl

`--no-exclude-seen --no-shuffle-ties` trains as the paper does.

One JSON line per epoch: validation and test metrics of the weights, and of their average when asked for.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from models.lrurec.data import build_sequences
from models.lrurec.evaluate import evaluate
from models.lrurec.model import LRURec, LRURecConfig
from models.lrurec.train import TrainConfig, epoch_windows, seed_everything, train_epoch
from tandem.settings import Settings
from training.lrurec import events_from_csv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", type=Path, default=Settings().data_dir / "ml-latest-small" / "ratings.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=TrainConfig.exclude_seen)
    p.add_argument("--shuffle-ties", action=argparse.BooleanOptionalAction, default=TrainConfig.shuffle_ties)
    p.add_argument("--average-from", type=int, help="also report the weights averaged from this epoch on")
    p.add_argument("--cosine", action="store_true", help="decay the learning rate to zero over --epochs")
    args = p.parse_args()

    seqs = build_sequences(events_from_csv(args.ratings))
    cfg = TrainConfig(seed=args.seed, exclude_seen=args.exclude_seen, shuffle_ties=args.shuffle_ties)
    seed_everything(cfg.seed)
    model = LRURec(LRURecConfig(num_items=seqs.num_items))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs) if args.cosine else None
    generator = torch.Generator().manual_seed(cfg.seed)
    ties = random.Random(cfg.seed)
    averaged = AveragedModel(model) if args.average_from else None
    for epoch in range(1, args.epochs + 1):
        inputs, labels = epoch_windows(seqs, model.cfg.max_len, cfg, ties)
        loss = train_epoch(model, optimizer, inputs, labels, cfg, generator)
        if schedule:
            schedule.step()
        row = {"epoch": epoch, "loss": round(loss, 4),
               "val": evaluate(model, seqs, "val"), "test": evaluate(model, seqs, "test")}
        if averaged is not None and epoch >= args.average_from:
            averaged.update_parameters(model)
            row["averaged"] = {"val": evaluate(averaged.module, seqs, "val"),
                               "test": evaluate(averaged.module, seqs, "test")}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
