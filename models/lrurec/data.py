"""MovieLens-style preparation as in the paper: iterative 5-core, time-ordered sequences, leave-one-out."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter

import torch


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    timestamp: datetime


@dataclass
class Sequences:
    """Users' time-ordered histories as item indices 1..N (0 is padding)."""

    user_ids: list[str]
    item_ids: list[str]  # item_ids[i - 1] is the external id of index i
    histories: list[list[int]]
    times: list[list[datetime]] = field(default_factory=list)  # times[u][t]: when histories[u][t] happened

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def item_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids, start=1)}

    def popularity(self, upto: int = -2) -> torch.Tensor:
        """Interaction counts per index over each history without its last `-upto` items (training part)."""
        counts = torch.zeros(self.num_items + 1)
        for h in self.histories:
            counts[torch.tensor(h[:upto] if upto else h, dtype=torch.long)] += 1
        return counts

    def with_ties_shuffled(self, rng: random.Random) -> list[list[int]]:
        """The histories with the items of each run of equal timestamps in a random order, the last two
        (validation and test) left in place. MovieLens records about one rating in six in the same second
        as the one before; their order here (by item id, for a reproducible split) says nothing about the
        user, and training on a new order each epoch lifts Recall@10 (docs/benchmarks.md)."""
        shuffled = []
        for history, times in zip(self.histories, self.times, strict=True):
            end = max(len(history) - 2, 0)
            out: list[int] = []
            for _, run in groupby(zip(times[:end], history[:end], strict=True), key=itemgetter(0)):
                items = [item for _, item in run]
                rng.shuffle(items)
                out += items
            shuffled.append(out + history[end:])
        return shuffled


def k_core(events: list[Event], min_user: int = 5, min_item: int = 5) -> list[Event]:
    """Drop items with fewer than `min_item` users and users with fewer than `min_user` items, until stable."""
    while True:
        item_counts = Counter(e.item_id for e in events)
        kept = [e for e in events if item_counts[e.item_id] >= min_item]
        user_counts = Counter(e.user_id for e in kept)
        kept = [e for e in kept if user_counts[e.user_id] >= min_user]
        if len(kept) == len(events):
            return kept
        events = kept


def build_sequences(
    events: Iterable[Event], min_user: int = 5, min_item: int = 5, item_ids: list[str] | None = None
) -> Sequences:
    """Histories after k-core filtering. With `item_ids` (a trained model's), indices follow that list
    and events on other items are dropped first, so a saved model can be evaluated on new data."""
    events = list(events)
    if item_ids is not None:
        known = set(item_ids)
        events = [e for e in events if e.item_id in known]
    events = k_core(events, min_user, min_item)
    if not events:
        raise ValueError(f"no user has {min_user} interactions with items that {min_item} users share")
    if item_ids is None:
        item_ids = sorted({e.item_id for e in events})
    index = {item: i for i, item in enumerate(item_ids, start=1)}
    by_user: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e)
    user_ids = sorted(by_user)
    # Time order; simultaneous events (common in MovieLens) in item order, so the split is reproducible.
    ordered = [sorted(by_user[u], key=lambda e: (e.timestamp, e.item_id)) for u in user_ids]
    return Sequences(user_ids=user_ids, item_ids=item_ids, histories=[[index[e.item_id] for e in h] for h in ordered],
                     times=[[e.timestamp for e in h] for h in ordered])


def left_pad(seqs: list[list[int]], length: int) -> torch.Tensor:
    """The last `length` items of each sequence, left-padded with 0: (B, length)."""
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for row, seq in enumerate(seqs):
        tail = seq[-length:]
        if tail:
            out[row, length - len(tail):] = torch.tensor(tail)
    return out


def training_windows(histories: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-item pairs at every position from each training history (all but its last two items).

    Histories longer than max_len + 1 are cut, from the end, into windows of max_len + 1 items.
    Returns (inputs, labels), both (W, max_len), left-padded.
    """
    inputs, labels = [], []
    for history in histories:
        train = history[:-2]
        for end in range(len(train), 1, -max_len):
            window = train[max(0, end - max_len - 1):end]
            inputs.append(window[:-1])
            labels.append(window[1:])
    return left_pad(inputs, max_len), left_pad(labels, max_len)
