"""The pipeline registry is the one list: training, the trainer's API and readiness all follow it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tandem.pipelines import ADAPTERS, MODELS, PIPELINES, TRAINABLE
from training.pipelines import RUNS


def test_every_trainable_model_has_a_training_run() -> None:
    assert set(RUNS) == set(TRAINABLE)
    assert {m for p in PIPELINES.values() for m in p.models} <= set(MODELS)
    assert all(MODELS[m].trained_on in (None, *MODELS) for m in MODELS)
    assert set(ADAPTERS) == {"ranker", "qa", "books"}


def test_the_training_api_accepts_exactly_the_trainable_models() -> None:
    from deployments.protocol.training import TrainRequest

    for name in ("all", *TRAINABLE):
        assert TrainRequest(pipeline=name).pipeline == name
    for name in ("index", "books", "bert"):
        with pytest.raises(ValidationError):
            TrainRequest(pipeline=name)


def test_readiness_checks_every_part_a_pipeline_needs() -> None:
    from deployments.health import PARTS

    assert set(PARTS) == {"database", "llm", "candidates", "retriever", "keywords", "trainer"}
