"""Label log-probabilities with a Hugging Face model (training-time evaluation, and the one-at-a-time
baseline the served path is measured against), and ranking metrics over LRURec's candidates."""

from __future__ import annotations

import torch

from models.metrics import metrics_from_ranks
from models.verbalizer.data import EvalCase

MISSED = 1_000_000_000


@torch.no_grad()
def label_logprobs(model, prompts: list[list[int]], label_ids: list[int], pad_id: int) -> list[list[float]]:
    """One forward pass over left-padded prompts; the log-probability of each label as the next token."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()  # (B, V)
    return torch.log_softmax(logits, dim=-1)[:, label_ids].tolist()


def ranks_in_candidates(cases: list[EvalCase], orders: list[list[int]]) -> torch.Tensor:
    """0-based rank of each target in the given order of its candidates; a target LRURec missed is
    ranked past any cut-off, so it never counts as a hit (at k beyond the pool this is a lower bound)."""
    ranks = []
    for case, order in zip(cases, orders, strict=True):
        ranked = [case.candidates[i] for i in order]
        ranks.append(ranked.index(case.target) if case.target in ranked else MISSED)
    return torch.tensor(ranks)


def candidate_metrics(cases: list[EvalCase], orders: list[list[int]], ks: tuple[int, ...] = (5, 10)) -> dict:
    """NDCG@k and Recall@k over all users (MRR is left out: a miss has no true rank here)."""
    metrics = metrics_from_ranks(ranks_in_candidates(cases, orders), ks)
    metrics.pop("MRR")
    return metrics
