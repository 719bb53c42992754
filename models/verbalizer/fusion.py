"""The served order of the recommender: LRURec's score and the LLM's label log-probability fused, the LLM's share
weighted; the weight chosen on validation users as hybrid retrieval chooses its dense weight.

Both stages score the same candidates on different scales (LRURec: logits over the catalogue; the LLM:
log-probabilities over its whole vocabulary), so each is first normalised over the candidates (a log-softmax),
which makes them log-probabilities of "this candidate is next" that can be added. Weight 0 is LRURec's order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The LLM's weights tried on the validation users; 0 (LRURec alone) is always among them, so the tuned order
# is never below LRURec's on those users.
WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


def log_softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    total = math.log(sum(math.exp(s - top) for s in scores))
    return [s - top - total for s in scores]


def fused_scores(lrurec: Sequence[float], llm: Sequence[float], weight: float) -> list[float]:
    """Each candidate's fused score: LRURec's log-probability over the candidates plus `weight` times the LLM's."""
    if len(lrurec) != len(llm):
        raise ValueError(f"{len(lrurec)} LRURec scores for {len(llm)} LLM scores")
    return [a + weight * b for a, b in zip(log_softmax(lrurec), log_softmax(llm), strict=True)]


def order_by(scores: Sequence[float]) -> list[int]:
    """Candidate positions, best first; ties keep the candidates' own (LRURec's) order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def tune_weight(score_of_orders, lrurec: list[list[float]], llm: list[list[float]],
                weights: Sequence[float] = WEIGHTS) -> tuple[float, dict[str, float]]:
    """The weight whose fused orders score best by `score_of_orders(orders)` (e.g. NDCG@10 on validation users),
    the smallest of equals (the LLM must earn its share); and every weight's score."""
    scored: dict[str, float] = {}
    best, best_score = 0.0, -math.inf
    for weight in sorted(weights):
        orders = [order_by(fused_scores(a, b, weight)) if a else [] for a, b in zip(lrurec, llm, strict=True)]
        scored[f"{weight:g}"] = score = score_of_orders(orders)
        if score > best_score:
            best, best_score = weight, score
    return best, scored


def saved_weight(metrics: dict) -> float | None:
    """The fusion weight a ranker was tuned with, from its metrics (`train_ranker` saves it there); None for an
    adapter without one."""
    weight = (metrics.get("fusion") or {}).get("weight")
    return float(weight) if weight is not None else None
