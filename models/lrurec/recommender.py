"""Top-k candidates from a trained LRURec: one forward pass for a batch of histories, history excluded."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.lrurec.checkpoint import Checkpoint
from models.lrurec.data import left_pad


@dataclass(frozen=True)
class Ranked:
    item_ids: list[str]
    scores: list[float]
    fallback: bool  # most-popular items, because the model knew nothing of this history


class Recommender:
    def __init__(self, checkpoint: Checkpoint, device: str = "cpu"):
        self.model = checkpoint.model.to(device).eval()
        self.device = torch.device(device)
        self.item_ids = checkpoint.item_ids
        self.index = {item: i for i, item in enumerate(self.item_ids, start=1)}
        self.popularity = checkpoint.popularity.clone()
        self.popularity[0] = float("-inf")

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def known(self, item_ids: list[str]) -> list[int]:
        """Indices of the items the model was trained on; newer items are skipped, never an error."""
        return [self.index[i] for i in item_ids if i in self.index]

    @torch.no_grad()
    def rank(self, histories: list[list[str]], ks: list[int], seen: list[frozenset[str] | None] | None = None,
             ) -> list[Ranked]:
        """For each history (oldest first; only its last `max_len` known items count) its top-k items outside
        `seen` (default: the history itself). Histories with no known item get the most popular items instead,
        flagged as a fallback."""
        indices = [self.known(h) for h in histories]
        excluded = [idx if s is None else self.known(list(s))
                    for idx, s in zip(indices, seen or [None] * len(histories), strict=True)]
        with_history = [row for row, idx in enumerate(indices) if idx]
        scores = self.popularity.expand(len(histories), -1).clone()
        if with_history:
            batch = left_pad([indices[row] for row in with_history], self.model.cfg.max_len)
            scores[with_history] = self.model.last_scores(batch.to(self.device)).cpu()
        results = []
        for row, (idx, out, k) in enumerate(zip(indices, excluded, ks, strict=True)):
            scores[row, out] = float("-inf")
            top = torch.topk(scores[row], min(k, self.num_items - len(set(out))))
            results.append(Ranked(
                item_ids=[self.item_ids[i - 1] for i in top.indices.tolist()],
                scores=[round(s, 6) for s in top.values.tolist()],
                fallback=not idx,
            ))
        return results
