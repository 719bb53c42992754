"""`tandem train lrurec` and `tandem eval lrurec`: data from a CSV or the database, artifacts under var/."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from db import connect
from db.files.ratings_csv import read_ratings
from models.lrurec.checkpoint import Checkpoint
from models.lrurec.data import Event, build_sequences
from models.lrurec.evaluate import evaluate, most_popular
from models.lrurec.model import LRURecConfig
from models.lrurec.train import TrainConfig, train
from tandem.settings import Settings
from training import registered
from training.options import LRURecOptions, config_of

PIPELINE = "lrurec"


@dataclass
class TrainRequest:
    options: LRURecOptions = field(default_factory=LRURecOptions)
    ratings: Path | None = None  # None: the database
    output: Path | None = None  # None: var/artifacts/lrurec/<version>
    activate: bool = True
    label: str | None = None  # appended to the version, e.g. "quick"



def new_version(label: str | None = None) -> str:
    """A sortable version name; `label` (e.g. "quick", for the quick preset) is appended."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return f"{stamp}-{label}" if label else stamp


def events_from_csv(path: Path) -> list[Event]:
    return [Event(r.user_id, r.item_id, r.timestamp) for r in read_ratings(path)]


async def _db_events(url: str) -> list[Event]:
    from db.interactions import all_events

    async with connect(url) as conn:
        return [Event(r["user_id"], r["item_id"], r["timestamp"]) for r in await all_events(conn)]


def run_training(
    settings: Settings, request: TrainRequest, database_url: str | None = None, run_id: int | None = None
) -> dict:
    """Train; from the database (database_url given, no ratings file) the run and version are recorded,
    in the queued run `run_id` when given."""
    version = new_version(request.label)
    output = request.output or settings.artifacts_dir / PIPELINE / version
    if request.ratings is None and database_url is None:
        raise ValueError("give a ratings CSV or a database")
    events = events_from_csv(request.ratings) if request.ratings else asyncio.run(_db_events(database_url))
    seqs = build_sequences(events)
    model_cfg = LRURecConfig(num_items=seqs.num_items, **request.options.model_options())
    train_cfg = config_of(request.options, TrainConfig)
    device = settings.model_device("train")
    if request.ratings is not None:
        return train(seqs, model_cfg, train_cfg, output, device=device)
    params = {"model": model_cfg.to_dict(), "train": train_cfg.model_dump(), "users": len(seqs.user_ids)}
    return registered.run(settings, database_url, PIPELINE, params, version, output,
                          lambda report: train(seqs, model_cfg, train_cfg, output, on_epoch=report, device=device),
                          request.activate, run_id)


def run_evaluation(model_dir: Path, ratings: Path | None, database_url: str | None) -> dict:
    checkpoint = Checkpoint.load(model_dir)
    events = events_from_csv(ratings) if ratings else asyncio.run(_db_events(database_url))
    seqs = build_sequences(events, item_ids=checkpoint.item_ids)
    return {
        "test": evaluate(checkpoint.model, seqs, "test"),
        "most_popular_test": most_popular(seqs, "test"),
        "users": len(seqs.user_ids),
        "items": seqs.num_items,
    }

