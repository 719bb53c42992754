"""Ranking metrics shared by every recommender: MRR, NDCG@k and Recall@k with one held-out item per user."""

from __future__ import annotations

import torch

KS = (5, 10, 20)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all scored items: (B, N) scores, (B,) targets -> (B,).

    Items to exclude (history, padding) must already be scored -inf. Ties count against the
    target, so a model that scores everything equal gets no credit.
    """
    target_scores = scores.gather(1, targets.unsqueeze(1))
    return (scores >= target_scores).sum(dim=1) - 1


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Averages over users: MRR over the full ranking, NDCG@k and Recall@k (one relevant item)."""
    ranks = ranks.double()
    out = {"MRR": (1.0 / (ranks + 1)).mean().item()}
    for k in ks:
        hit = ranks < k
        out[f"NDCG@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2), 0.0).mean().item()
        out[f"Recall@{k}"] = hit.double().mean().item()
    return {name: round(v, 6) for name, v in out.items()}
