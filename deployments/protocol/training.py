"""`POST /v1/train`: which pipelines to retrain, with each one's options, and the runs it queued."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tandem.pipelines import TRAINABLE
from training.pipelines import TrainOptions


class TrainRequest(TrainOptions):
    pipeline: Literal[("all", *TRAINABLE)] = Field(
        description="`all`: LRURec, then the ranker on it; `dpr`: the retrieval encoders and their index; "
                    "`qa`: the LLM's qa adapter; `kobart`: the keyword model."
    )


class RunRef(BaseModel):
    id: int
    pipeline: str


class TrainAccepted(BaseModel):
    run_id: int = Field(description="The first run; `runs` lists one per pipeline, in the order they train.")
    runs: list[RunRef]
