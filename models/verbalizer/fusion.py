"""The served order of the recommender: LRURec's score and the LLM's label log-probability fused, the LLM's share
weighted; the weight fitted on validation users (`fusion_weight`), as hybrid retrieval tunes its dense weight.

Both stages score the same candidates on different scales (LRURec: logits over the catalogue; the LLM:
log-probabilities over its whole vocabulary), so each is first normalised over the candidates (a log-softmax),
which makes them log-probabilities of "this candidate is next" that can be added. Weight 0 is LRURec's order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


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


def saved_weight(metrics: dict) -> float | None:
    """The fusion weight a ranker was fitted with, from its metrics (`train_ranker` saves it there); None for an
    adapter without one."""
    weight = (metrics.get("fusion") or {}).get("weight")
    return float(weight) if weight is not None else None
