"""`tandem train ranker`: LoRA adapter for the verbalizer, trained and evaluated on top of a trained LRURec.

Data come from the database (interactions and item titles) or from CSV files; the LRURec is the active
version in the database or a folder. Trained from the database, the adapter is registered as the
`ranker` pipeline's active version, which the LLM deployment loads without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from db import connect
from db.files.ratings_csv import read_items
from models.lora import Resume
from models.lrurec.checkpoint import Checkpoint
from models.lrurec.data import Sequences, build_sequences, left_pad
from models.lrurec.evaluate import exclude_history, split
from models.verbalizer.data import (
    EvalCase,
    Example,
    candidate_examples,
    evaluation_cases,
    random_examples,
    training_prefixes,
)
from models.verbalizer.train import RankerTrainConfig, train_ranker
from tandem.settings import Settings
from training import registered
from training.lrurec import _db_events, events_from_csv, new_version
from training.options import RankerOptions, config_of

PIPELINE = "ranker"


@dataclass
class RankerRequest:
    options: RankerOptions = field(default_factory=RankerOptions)
    ratings: Path | None = None  # None: the database
    items: Path | None = None  # titles, with --ratings
    lrurec: Path | None = None  # None: the active LRURec version
    output: Path | None = None
    activate: bool = True
    label: str | None = None  # appended to the version, e.g. "quick"


@torch.no_grad()
def lrurec_top(checkpoint: Checkpoint, histories: list[list[int]], k: int) -> tuple[list[list[int]], list[list[float]]]:
    """LRURec's top-k for each history, history excluded, and their scores: what the ranker reorders in serving."""
    items, scores = [], []
    for start in range(0, len(histories), 256):
        batch = histories[start:start + 256]
        scores_of = exclude_history(checkpoint.model.last_scores(left_pad(batch, checkpoint.model.cfg.max_len)), batch)
        top = torch.topk(scores_of, min(k, scores_of.shape[1]))
        for row, vals in zip(top.indices.tolist(), top.values.tolist(), strict=True):
            # In a small catalogue a long history leaves fewer than k unseen items: no excluded item is a candidate.
            kept = [(i, v) for i, v in zip(row, vals, strict=True) if v > float("-inf")]
            items.append([i for i, _ in kept])
            scores.append([v for _, v in kept])
    return items, scores


def lrurec_cases(checkpoint: Checkpoint, seqs: Sequences, stage: str, k: int, users: int | None) -> list[EvalCase]:
    """The first `users` users' cases at `stage` (all when None), with LRURec's candidates and scores."""
    histories, _ = split(seqs, stage)
    cases = evaluation_cases(seqs, *lrurec_top(checkpoint, histories, k), stage)
    return cases[:users] if users else cases


def ranker_examples(checkpoint: Checkpoint, seqs: Sequences, options: RankerOptions, k: int) -> list[Example]:
    """The training prompts: LRURec's candidates for each training prefix (what the ranker will rank), or random
    negatives."""
    prefixes = training_prefixes(seqs, options.examples, options.seed)
    if options.negatives == "random":
        return random_examples(seqs, prefixes, k, options.seed)
    candidates, _ = lrurec_top(checkpoint, [p.history for p in prefixes], k)
    return candidate_examples(prefixes, candidates, options.seed)


async def _db_titles(url: str, item_ids: list[str]) -> dict[str, str]:
    from db.interactions import titles

    async with connect(url, migrate=False) as conn:
        return await titles(conn, item_ids)


def run_ranker_training(
    settings: Settings, request: RankerRequest, database_url: str | None = None, run_id: int | None = None
) -> dict:
    from_db = request.ratings is None
    if from_db and database_url is None:
        raise ValueError("give a ratings CSV or a database")
    lrurec_dir = request.lrurec or (
        registered.active_artifact(settings, database_url, "lrurec") if database_url else None)
    if lrurec_dir is None:
        raise ValueError("no LRURec model: train one first (`tandem train lrurec`) or pass --lrurec DIR")
    checkpoint = Checkpoint.load(lrurec_dir)
    events = asyncio.run(_db_events(database_url)) if from_db else events_from_csv(request.ratings)
    seqs = build_sequences(events, item_ids=checkpoint.item_ids)
    if from_db:
        names = asyncio.run(_db_titles(database_url, checkpoint.item_ids))
    else:
        info = read_items(request.items) if request.items else {}
        names = {i: info[i].title for i in checkpoint.item_ids if i in info}
    titles = {index: names.get(item, item) for index, item in enumerate(checkpoint.item_ids, start=1)}
    # The LoRA shape and the prompt come from settings, so training and serving agree on them.
    options = request.options
    train_cfg, verbalizer_cfg = config_of(options, RankerTrainConfig), settings.verbalizer
    k = verbalizer_cfg.num_candidates
    examples = ranker_examples(checkpoint, seqs, options, k)
    # The fusion weight is tuned on validation users and reported on test users, as many of each.
    val, test = (lrurec_cases(checkpoint, seqs, stage, k, options.eval_users) for stage in ("val", "test"))
    version = new_version(request.label)
    output = request.output or settings.artifacts_dir / PIPELINE / version

    # A run with the same options on the same LRURec and base continues where an interrupted one stopped.
    key = json.dumps([options.model_dump(), str(lrurec_dir), settings.llm_path, verbalizer_cfg.model_dump(),
                      settings.lora_shape.model_dump()], sort_keys=True)
    resume_dir = settings.var_dir / "resume" / PIPELINE / hashlib.sha256(key.encode()).hexdigest()[:16]

    def work(on_step=None) -> dict:
        metrics = train_ranker(settings.llm_path, examples, val, test, titles, output, train_cfg, settings.lora_shape,
                               verbalizer_cfg, settings.model_device("train"), on_step=on_step,
                               resume=Resume(resume_dir))
        shutil.rmtree(resume_dir, ignore_errors=True)
        return {**metrics, "lrurec": str(lrurec_dir), "negatives": options.negatives}

    if not from_db:
        return work()
    parameters = {"examples": options.examples, "negatives": options.negatives, "lrurec": str(lrurec_dir),
                  "base": settings.llm_path}
    return registered.run(settings, database_url, PIPELINE, parameters, version, output, work, request.activate,
                          run_id)
