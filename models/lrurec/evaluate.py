"""Full-ranking evaluation: every item scored, the user's history excluded."""

from __future__ import annotations

import torch

from models.lrurec.data import Sequences, left_pad
from models.lrurec.model import LRURec
from models.metrics import metrics_from_ranks, target_ranks


def split(seqs: Sequences, stage: str) -> tuple[list[list[int]], list[int]]:
    """Leave-one-out: validation predicts the second-to-last item from what precedes it, test the last."""
    cut = -2 if stage == "val" else -1
    return [h[:cut] for h in seqs.histories], [h[cut] for h in seqs.histories]


def exclude_history(scores: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
    scores = scores.clone()
    for row, h in enumerate(histories):
        scores[row, h] = float("-inf")
    scores[:, 0] = float("-inf")
    return scores


@torch.no_grad()
def evaluate(model: LRURec, seqs: Sequences, stage: str, batch_size: int = 128) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    inputs, targets = split(seqs, stage)
    ranks = []
    for i in range(0, len(inputs), batch_size):
        batch = inputs[i:i + batch_size]
        scores = model.last_scores(left_pad(batch, model.cfg.max_len).to(device)).cpu()
        scores = exclude_history(scores, batch)
        ranks.append(target_ranks(scores, torch.tensor(targets[i:i + batch_size])))
    return metrics_from_ranks(torch.cat(ranks))


def most_popular(seqs: Sequences, stage: str) -> dict[str, float]:
    """The baseline: items ranked by training popularity, history excluded."""
    inputs, targets = split(seqs, stage)
    popularity = seqs.popularity()
    scores = exclude_history(popularity.expand(len(inputs), -1), inputs)
    return metrics_from_ranks(target_ranks(scores, torch.tensor(targets)))
