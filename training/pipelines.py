"""Retraining from the current database, as `POST /v1/train` asks for it: LRURec, the ranker, or both in turn;
the DPR encoder (and its index), the qa adapter or the keyword model.

Runs in a Ray task (its own process), so serving is untouched; the deployments pick up the new
versions through NOTIFY when each run succeeds, and keep the old ones when it fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from tandem.settings import Settings
from training.options import FORBID_UNKNOWN, QUICK, DPROptions, KeywordOptions, LRURecOptions, QAOptions, RankerOptions

ORDER = ("lrurec", "ranker")


class TrainOptions(BaseModel):
    """Options of each pipeline a retraining may run; those of pipelines not run are ignored."""

    model_config = FORBID_UNKNOWN
    preset: Literal["full", "quick"] = Field(
        default="full", description="`quick`: the first run's short trainings (training/options.py), with `-quick` "
        "at the end of each version's name; the options given here still apply over them.")
    lrurec: LRURecOptions = Field(default_factory=LRURecOptions)
    ranker: RankerOptions = Field(default_factory=RankerOptions)
    dpr: DPROptions = Field(default_factory=DPROptions)
    qa: QAOptions = Field(default_factory=QAOptions)
    kobart: KeywordOptions = Field(default_factory=KeywordOptions)

    def of(self, model: str):
        """`model`'s options: those given, over the preset's."""
        given = getattr(self, model)
        if self.preset == "full" or model not in QUICK:
            return given
        return type(given).model_validate({**QUICK[model].model_dump(exclude_unset=True),
                                           **given.model_dump(exclude_unset=True)})

    def label(self, model: str) -> str | None:
        """What a version of `model` trained with these options is labelled with: "quick" when they are."""
        return "quick" if self.preset == "quick" and model in QUICK else None


def plan(pipeline: str) -> list[str]:
    return list(ORDER) if pipeline == "all" else [pipeline]


def _lrurec(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.lrurec import TrainRequest, run_training

    run_training(settings, TrainRequest(options.of("lrurec"), label=options.label("lrurec")), url, run_id)


def _ranker(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.ranker import RankerRequest, run_ranker_training

    run_ranker_training(settings, RankerRequest(options.of("ranker"), label=options.label("ranker")), url, run_id)


def _dpr(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.retrieval import DPRRequest, run_dpr_training

    run_dpr_training(settings, DPRRequest(options.of("dpr"), label=options.label("dpr")), url, run_id)


def _qa(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.qa import QAAdapterRequest, run_qa_training

    run_qa_training(settings, QAAdapterRequest(options.of("qa"), label=options.label("qa")), url, run_id)


def _kobart(settings: Settings, url: str, run_id: int, options: TrainOptions) -> None:
    from training.keywords import KeywordRequest, run_keyword_training

    run_keyword_training(settings, KeywordRequest(options.of("kobart"), label=options.label("kobart")), url, run_id)


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
