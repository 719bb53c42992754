"""Ranking examples as LlamaRec builds them, and the LRURec candidates the ranker is evaluated on."""

from __future__ import annotations

import random
from dataclasses import dataclass

from models.lrurec.data import Sequences
from models.lrurec.evaluate import split

# Training prompts per run by default: LlamaRec trains on every prefix of every history, which a CPU cannot
# afford for a 135M model; a few hundred already move the letters' probabilities (docs/benchmarks.md).
DEFAULT_EXAMPLES = 512


@dataclass(frozen=True)
class Example:
    history: list[int]  # item indices, oldest first
    candidates: list[int]  # shuffled; one of them is the answer
    answer: int  # position of the true next item in `candidates`


def training_examples(seqs: Sequences, num_candidates: int, count: int, seed: int) -> list[Example]:
    """`count` examples from the training part of the histories (validation and test items held out):
    a next item at a random position, among `num_candidates - 1` random items the user has not seen, shuffled."""
    rng = random.Random(seed)
    users = [h[:-2] for h in seqs.histories if len(h) >= 4]
    examples = []
    for _ in range(count):
        train = rng.choice(users)
        pos = rng.randrange(1, len(train))
        seen = set(train[: pos + 1])
        negatives: set[int] = set()
        while len(negatives) < num_candidates - 1:
            item = rng.randint(1, seqs.num_items)
            if item not in seen:
                negatives.add(item)
        candidates = [train[pos], *sorted(negatives)]
        rng.shuffle(candidates)
        examples.append(Example(history=train[:pos], candidates=candidates, answer=candidates.index(train[pos])))
    return examples


@dataclass(frozen=True)
class EvalCase:
    history: list[int]
    candidates: list[int]  # LRURec's top-k, in its order
    target: int  # the held-out item, which may be missing from the candidates


def evaluation_cases(seqs: Sequences, candidates: list[list[int]], stage: str) -> list[EvalCase]:
    """One case per user: its history before the held-out item, LRURec's candidates for it, the item."""
    histories, targets = split(seqs, stage)
    return [EvalCase(h, c, t) for h, c, t in zip(histories, candidates, targets, strict=True)]
