"""Retraining from the current database, as `POST /v1/train` asks for it: LRURec, the ranker, or both in turn;
the DPR encoder (and its index), the qa adapter or the keyword model.

Runs in a Ray task (its own process), so serving is untouched; the deployments pick up the new
versions through NOTIFY when each run succeeds, and keep the old ones when it fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pydantic import BaseModel, Field

from models.dpr.train import DPRTrainConfig
from models.kobart.train import KeywordTrainConfig
from models.lora import LoRATrainConfig
from models.lrurec.train import TrainConfig
from models.verbalizer.data import DEFAULT_EXAMPLES
from models.verbalizer.train import RankerTrainConfig
from tandem.settings import Settings

ORDER = ("lrurec", "ranker")


class LRURecOptions(BaseModel):
    max_epochs: int = Field(default=TrainConfig.max_epochs, ge=1, le=1000)
    patience: int = Field(default=TrainConfig.patience, ge=1)
    seed: int = 0
    exclude_seen: bool = Field(default=TrainConfig.exclude_seen,
                               description="leave the items already in the sequence out of each position's softmax")
    shuffle_ties: bool = Field(default=TrainConfig.shuffle_ties,
                               description="a new order, each epoch, for the items a user rated in the same second")


class DPROptions(BaseModel):
    epochs: int = Field(default=DPRTrainConfig.epochs, ge=1, le=100)
    max_questions: int | None = Field(default=None, ge=4, description="Training questions; all when omitted.")
    seed: int = 0


class QAOptions(BaseModel):
    examples: int = Field(default=64, ge=1, le=100_000, description="Question-answer pairs to train on.")
    epochs: int = Field(default=1, ge=1, le=100)
    seed: int = 0


class KeywordOptions(BaseModel):
    epochs: int = Field(default=KeywordTrainConfig.epochs, ge=1, le=100)
    max_pairs: int | None = Field(default=None, ge=4, description="Training pairs; all when omitted.")
    seed: int = 0


class RankerOptions(BaseModel):
    examples: int = Field(default=DEFAULT_EXAMPLES, ge=1, le=100_000, description="LlamaRec-style training prompts.")
    epochs: int = Field(default=1, ge=1, le=100)
    eval_users: int | None = Field(default=None, ge=1, description="Test users to evaluate on; all when omitted.")
    seed: int = 0


class TrainOptions(BaseModel):
    """Options of each pipeline a retraining may run; those of pipelines not run are ignored."""

    lrurec: LRURecOptions = Field(default_factory=LRURecOptions)
    ranker: RankerOptions = Field(default_factory=RankerOptions)
    dpr: DPROptions = Field(default_factory=DPROptions)
    qa: QAOptions = Field(default_factory=QAOptions)
    kobart: KeywordOptions = Field(default_factory=KeywordOptions)


def plan(pipeline: str) -> list[str]:
    return list(ORDER) if pipeline == "all" else [pipeline]


def _lrurec(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.lrurec import TrainRequest, run_training

    o = options.lrurec
    cfg = TrainConfig(max_epochs=o.max_epochs, patience=o.patience, seed=o.seed, exclude_seen=o.exclude_seen,
                      shuffle_ties=o.shuffle_ties)
    run_training(settings, TrainRequest(train=cfg), url, run_id)


def _ranker(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.ranker import RankerRequest, run_ranker_training

    o = options.ranker
    cfg = RankerTrainConfig(epochs=o.epochs, seed=o.seed)
    run_ranker_training(settings, RankerRequest(examples=o.examples, eval_users=o.eval_users, train=cfg), url, run_id)


def _dpr(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.retrieval import DPRRequest, run_dpr_training

    o = options.dpr
    cfg = DPRTrainConfig(epochs=o.epochs, lr=settings.dpr_lr, seed=o.seed)
    run_dpr_training(settings, DPRRequest(max_questions=o.max_questions, train=cfg), url, run_id)


def _qa(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.qa import QAAdapterRequest, run_qa_training

    o = options.qa
    cfg = LoRATrainConfig(epochs=o.epochs, seed=o.seed)
    run_qa_training(settings, QAAdapterRequest(examples=o.examples, train=cfg), url, run_id)


def _kobart(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.keywords import KeywordRequest, run_keyword_training

    o = options.kobart
    cfg = KeywordTrainConfig(epochs=o.epochs, lr=settings.keywords_lr, seed=o.seed)
    run_keyword_training(settings, KeywordRequest(max_pairs=o.max_pairs, train=cfg), url, run_id)


# One training run per trainable model of the registry (tandem.pipelines.TRAINABLE).
RUNS: dict[str, Callable[[Settings, str, int, TrainOptions], None]] = {
    "lrurec": _lrurec, "ranker": _ranker, "dpr": _dpr, "qa": _qa, "kobart": _kobart,
}


def train_pipelines(settings: Settings, url: str, runs: list[tuple[str, int]], options: TrainOptions) -> None:
    """Train each (model, queued run id) in order; a failure fails its run and every run after it."""
    for i, (pipeline, run_id) in enumerate(runs):
        try:
            RUNS[pipeline](settings, url, run_id, options)
        except Exception as exc:
            failures = [([run_id], f"{type(exc).__name__}: {exc}"),
                        ([r for _, r in runs[i + 1:]], f"not run: {pipeline} run {run_id} failed")]
            asyncio.run(_fail(url, failures))
            raise


async def _fail(url: str, failures: list[tuple[list[int], str]]) -> None:
    from db import connect, registry

    async with connect(url, migrate=False) as conn:
        for run_ids, error in failures:
            await registry.fail_unfinished(conn, run_ids, error)
