"""DPR training with in-batch negatives (plus one BM25 hard negative per question when given): each question
is scored against every passage of the batch and the loss is cross-entropy towards its own positive."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from tqdm.auto import tqdm

from models.dpr.data import Example
from models.dpr.encoder import DualEncoder
from models.fine_tuning import FineTuneConfig


class DPRTrainConfig(FineTuneConfig):
    batch_size: int = Field(default=32, ge=2, le=1024, description="Questions per step; the others' passages are "
                            "each one's in-batch negatives.")
    lr: float = Field(default=2e-5, gt=0, le=1, description="2e-5 for klue/bert-base; a small encoder trained from "
                      "scratch wants ~3e-4.")
    max_grad_norm: float = Field(default=2.0, gt=0)


def in_batch_loss(model: DualEncoder, batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and the number of questions whose own positive scored highest."""
    questions = model.embed_questions([e.question for e in batch])
    texts = [e.positive for e in batch] + [e.hard_negative for e in batch if e.hard_negative is not None]
    passages = model.embed_passages(texts)
    scores = questions @ passages.T
    target = torch.arange(len(batch), device=scores.device)
    return F.cross_entropy(scores, target), (scores.argmax(dim=1) == target).sum()


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    order = list(examples)
    rng.shuffle(order)
    # A batch with the same positive twice would mark a correct passage as a negative.
    batches, current, seen = [], [], set()
    for e in order:
        if e.positive in seen:
            continue
        current.append(e)
        seen.add(e.positive)
        if len(current) == size:
            batches.append(current)
            current, seen = [], set()
    if len(current) > 1:
        batches.append(current)
    return batches


@torch.no_grad()
def validate(model: DualEncoder, examples: list[Example], batch_size: int) -> dict[str, float]:
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in _batches(examples, batch_size, random.Random(0)):
        loss, right = in_batch_loss(model, batch)
        total_loss += loss.item() * len(batch)
        correct += int(right)
        count += len(batch)
    model.train()
    return {"loss": total_loss / max(count, 1), "in_batch_accuracy": correct / max(count, 1)}


def train(model: DualEncoder, examples: list[Example], config: DPRTrainConfig, output: Path,
          on_epoch: Callable[..., None] | None = None) -> dict:
    """Train, keep the epoch with the lowest validation loss in `output`, and write metrics.json there."""
    if len(examples) < 4:
        raise ValueError(f"DPR training needs at least 4 question-passage pairs, got {len(examples)}")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    shuffled = list(examples)
    rng.shuffle(shuffled)
    n_val = max(2, round(len(shuffled) * config.validation_fraction))
    val, train_set = shuffled[:n_val], shuffled[n_val:]
    steps = config.epochs * max(1, len(train_set) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(steps * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    model.train()
    best, best_epoch, history, started = float("inf"), 0, [], time.monotonic()
    for epoch in range(1, config.epochs + 1):
        losses = []
        for batch in tqdm(_batches(train_set, config.batch_size, rng), desc=f"dpr epoch {epoch}", unit="batch",
                          leave=False):
            loss, _ = in_batch_loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        scores = validate(model, val, config.batch_size)
        history.append({"epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1), **scores})
        tqdm.write(json.dumps(history[-1]))
        if on_epoch is not None:
            on_epoch(epoch=epoch, epochs=config.epochs, **scores)
        if scores["loss"] < best:
            best, best_epoch = scores["loss"], epoch
            model.save(output)
        elif epoch - best_epoch >= config.patience:
            break
    metrics = {"best_epoch": best_epoch, "validation": history[best_epoch - 1], "epochs": history,
               "examples": len(train_set), "validation_examples": len(val),
               "train_seconds": round(time.monotonic() - started, 1), "config": config.model_dump()}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
