"""Reciprocal-rank fusion (Cormack et al., 2009): score = sum over rankings of 1 / (k + rank)."""

from __future__ import annotations

from collections.abc import Hashable


def reciprocal_rank_fusion(rankings: list[list[Hashable]], k: int = 60) -> list[tuple[Hashable, float]]:
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
