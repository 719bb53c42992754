"""Fine-tuning the keyword model on (query, keywords) pairs: AdamW with linear warm-up and decay, gradient
clipping, padding left out of the loss, and the epoch with the lowest validation loss kept."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from pydantic import Field
from tqdm.auto import tqdm

from models.fine_tuning import FineTuneConfig
from models.kobart.keywords import set_scores, to_target
from models.kobart.model import KeywordModel

Pair = tuple[str, list[str]]


class KeywordTrainConfig(FineTuneConfig):
    lr: float = Field(default=1e-3, gt=0, le=1, description="1e-3 for the small local BART trained from scratch; "
                      "5e-5 for gogamza/kobart-base-v1.")


def batch_loss(model: KeywordModel, batch: list[Pair]) -> torch.Tensor:
    labels = model.targets([to_target(k) for _, k in batch])
    return model.model(**model.encode([q for q, _ in batch]), labels=labels).loss


@torch.no_grad()
def validation_loss(model: KeywordModel, pairs: list[Pair], batch_size: int) -> float:
    model.model.eval()
    total = sum(batch_loss(model, pairs[i : i + batch_size]).item() * len(pairs[i : i + batch_size])
                for i in range(0, len(pairs), batch_size))
    return total / len(pairs)


def train_keywords(model: KeywordModel, pairs: list[Pair], config: KeywordTrainConfig, output: Path,
                   on_epoch: Callable[..., None] | None = None) -> dict:
    """Train, keep the best epoch in `output` (a Hugging Face folder), and write metrics.json there,
    including exact-match scores of the best model on the validation pairs."""
    from transformers import get_linear_schedule_with_warmup

    if len(pairs) < 4:
        raise ValueError(f"keyword training needs at least 4 (query, keywords) pairs, got {len(pairs)}")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    n_val = max(2, round(len(shuffled) * config.validation_fraction))
    val, train_set = shuffled[:n_val], shuffled[n_val:]
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * steps_per_epoch * config.epochs),
                                               steps_per_epoch * config.epochs)
    best, best_epoch, history, started = float("inf"), 0, [], time.monotonic()
    for epoch in range(1, config.epochs + 1):
        model.model.train()
        rng.shuffle(train_set)
        losses = []
        for i in tqdm(range(0, len(train_set), config.batch_size), desc=f"keywords epoch {epoch}", unit="batch",
                      leave=False):
            loss = batch_loss(model, train_set[i : i + config.batch_size])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        val_loss = validation_loss(model, val, config.batch_size)
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "val_loss": val_loss})
        tqdm.write(json.dumps(history[-1]))
        if on_epoch is not None:
            on_epoch(epoch=epoch, epochs=config.epochs, val_loss=round(val_loss, 4))
        if val_loss < best:
            best, best_epoch = val_loss, epoch
            model.model.save_pretrained(output)
            model.tokenizer.save_pretrained(output)
        elif epoch - best_epoch >= config.patience:
            break
    best_model = KeywordModel.load(output, model.generation, str(model.model.device))
    predicted = [k for i in range(0, len(val), 64) for k in best_model.extract([q for q, _ in val[i : i + 64]])]
    metrics = {"best_epoch": best_epoch, "val_loss": best, "validation": set_scores(predicted, [k for _, k in val]),
               "epochs": history, "pairs": len(train_set), "validation_pairs": len(val),
               "train_seconds": round(time.monotonic() - started, 1), "config": config.model_dump(),
               "generation": asdict(model.generation)}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    return metrics
