"""The served order's fusion of LRURec's and the LLM's scores, and its weight tuned on validation users."""

from __future__ import annotations

import math

import pytest

from models.verbalizer.data import EvalCase
from models.verbalizer.fusion import WEIGHTS, fused_scores, log_softmax, order_by, saved_weight, tune_weight
from models.verbalizer.scoring import candidate_metrics

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


def test_the_weight_is_the_validation_best_and_the_smallest_of_equals() -> None:
    # The target is LRURec's third candidate: only enough weight on the LLM brings it to the top.
    cases = [EvalCase([1], [10, 11, 12, 13], LRUREC, 12)]
    top1 = lambda orders: candidate_metrics(cases, orders, ks=(1,))["NDCG@1"]  # noqa: E731
    weight, by_weight = tune_weight(top1, [LRUREC], [LLM])
    assert by_weight["0"] == 0.0 and by_weight[f"{weight:g}"] == 1.0
    assert all(by_weight[f"{w:g}"] == 0.0 for w in WEIGHTS if w < weight)
    assert order_by(fused_scores(LRUREC, LLM, weight))[0] == 2
    # Where the LLM adds nothing, LRURec's order (weight 0) is kept.
    assert tune_weight(top1, [LRUREC], [[-1.0] * 4])[0] == 0.0


def test_the_saved_weight_is_read_from_the_metrics() -> None:
    assert saved_weight({"fusion": {"weight": 0.35}}) == 0.35
    assert saved_weight({"test": {}}) is None
