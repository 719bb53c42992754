"""The served order's fusion of LRURec's and the LLM's scores, and its weight fitted on validation users."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.verbalizer.fusion import fused_scores, log_softmax, order_by, saved_weight
from models.verbalizer.fusion_weight import SIGNIFICANCE, fit_weight

LRUREC = [4.0, 3.0, 1.0, 0.5]  # LRURec's order: its candidates come best first
LLM = [-3.0, -2.5, -0.2, -4.0]  # the LLM prefers the third


def test_weight_zero_is_lrurecs_order_and_a_large_one_the_llms() -> None:
    assert order_by(fused_scores(LRUREC, LLM, 0.0)) == [0, 1, 2, 3]
    assert order_by(fused_scores(LRUREC, LLM, 50.0)) == order_by(LLM) == [2, 1, 0, 3]
    # Each stage normalised over the candidates first: adding a constant to a stage's scores changes nothing.
    assert fused_scores([s + 100 for s in LRUREC], [s - 7 for s in LLM], 0.5) == pytest.approx(
        fused_scores(LRUREC, LLM, 0.5))
    assert sum(math.exp(s) for s in log_softmax(LLM)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="4 LRURec scores for 3"):
        fused_scores(LRUREC, LLM[:3], 1.0)


def test_ties_keep_lrurecs_order() -> None:
    assert order_by([-1.0, -1.0, -0.5, -1.0]) == [2, 0, 1, 3]


def _users(rng: np.random.Generator, n: int, llm_weight: float, informative: bool = True):
    """`n` users of 20 candidates whose next item is drawn from softmax(lrurec + llm_weight * llm), both stages'
    scores already log-softmaxed; with `informative` False the LLM's scores are redrawn after the draw."""
    lrurec, llm, targets = [], [], []
    for _ in range(n):
        a, b = log_softmax(list(rng.normal(0, 1.5, 20))), log_softmax(list(rng.normal(0, 1.0, 20)))
        p = np.exp(np.array(fused_scores(a, b, llm_weight)))
        targets.append(int(rng.choice(20, p=p / p.sum())))
        lrurec.append(a)
        llm.append(b if informative else log_softmax(list(rng.normal(0, 1.0, 20))))
    return lrurec, llm, targets


def test_the_fitted_weight_recovers_the_llms_share() -> None:
    rng = np.random.default_rng(0)
    fit = fit_weight(*_users(rng, 3000, 0.5))
    assert fit.weight == pytest.approx(0.5, abs=0.1) and fit.users == 3000
    assert fit.lrurec_scale == pytest.approx(1.0, abs=0.1)
    assert fit.log_likelihood["fused"] > fit.log_likelihood["lrurec"] and fit.lr_statistic > SIGNIFICANCE
    # A larger share is found as well.
    lrurec, llm, targets = _users(np.random.default_rng(1), 3000, 2.0)
    assert fit_weight(lrurec, llm, targets).weight == pytest.approx(2.0, rel=0.1)


def test_an_llm_that_adds_nothing_gets_weight_zero() -> None:
    rng = np.random.default_rng(2)
    lrurec, llm, targets = _users(rng, 1000, 0.0, informative=False)
    fit = fit_weight(lrurec, llm, targets)
    assert fit.weight == 0.0 and fit.lr_statistic < SIGNIFICANCE
    # An LLM that prefers the wrong items is not turned upside down: weight 0, not a negative one.
    lrurec, llm, targets = _users(rng, 1000, 1.0)
    flipped = fit_weight(lrurec, [[-s for s in row] for row in llm], targets)
    assert flipped.llm_scale < 0 and flipped.weight == 0.0
    assert fit_weight(lrurec, [[-1.0] * 20] * len(lrurec), targets).weight == 0.0


def test_users_whose_next_item_is_no_candidate_are_left_out() -> None:
    lrurec, llm, targets = _users(np.random.default_rng(3), 400, 1.0)
    fit = fit_weight(lrurec, llm, targets)
    padded = fit_weight([*lrurec, LRUREC, []], [*llm, LLM, []], [*targets, None, 0])
    assert padded.users == fit.users == 400 and padded.weight == fit.weight
    assert fit_weight([LRUREC], [LLM], [None]).users == 0


def test_the_saved_weight_is_read_from_the_metrics() -> None:
    assert saved_weight({"fusion": {"weight": 0.35}}) == 0.35
    assert saved_weight({"test": {}}) is None
