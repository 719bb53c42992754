"""Reciprocal-rank fusion (Cormack et al., 2009): score = sum over rankings of weight / (k + rank).

Plain RRF (all weights 1) trusts every ranking equally; when one retriever is much weaker than the other
(a small encoder trained here against BM25 on text BM25 suits), a lower weight keeps it from reordering the
strong one's top and lets it add what the strong one misses."""

from __future__ import annotations

from collections.abc import Hashable


def reciprocal_rank_fusion(rankings: list[list[Hashable]], k: int = 60,
                           weights: list[float] | None = None) -> list[tuple[Hashable, float]]:
    weights = weights or [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


def relative_score_fusion(scored: list[list[tuple[Hashable, float]]],
                          weights: list[float] | None = None) -> list[tuple[Hashable, float]]:
    """Each ranking's scores min-max scaled to [0, 1] over its own list, then summed with weights (a key a
    ranking lacks gets 0 from it). Unlike RRF it keeps how far apart the scores are, so a confident BM25 top
    hit is not overturned by small differences in a weak ranking."""
    weights = weights or [1.0] * len(scored)
    if len(weights) != len(scored):
        raise ValueError("one weight per ranking")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(scored, weights, strict=True):
        if not ranking:
            continue
        values = [s for _, s in ranking]
        low, span = min(values), max(values) - min(values)
        for key, s in ranking:
            scores[key] = scores.get(key, 0.0) + weight * ((s - low) / span if span > 0 else 1.0)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
