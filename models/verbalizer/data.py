"""Ranking examples as LlamaRec builds them, and the LRURec candidates the ranker is evaluated on."""

from __future__ import annotations

import random
from dataclasses import dataclass

from models.lrurec.data import Sequences
from models.lrurec.evaluate import split

# Training prompts per run by default, chosen from the curve in docs/benchmarks.md (issue 24): with the 135M model,
# 1,024 prompts took twice the time of 256 and made neither the LLM alone nor the fused order better. LlamaRec
# trains a 7B model on every prefix of every history; a larger model on a GPU should be measured again.
DEFAULT_EXAMPLES = 256


@dataclass(frozen=True)
class Example:
    history: list[int]  # item indices, oldest first
    candidates: list[int]  # shuffled; one of them is the answer
    answer: int  # position of the true next item in `candidates`


@dataclass(frozen=True)
class Prefix:
    history: list[int]  # item indices, oldest first
    next_item: int


def training_prefixes(seqs: Sequences, count: int, seed: int) -> list[Prefix]:
    """`count` (history, next item) pairs drawn from the training part of the histories (validation and test items
    held out), at a random user and position each."""
    rng = random.Random(seed)
    users = [h[:-2] for h in seqs.histories if len(h) >= 4]
    prefixes = []
    for _ in range(count):
        train = rng.choice(users)
        pos = rng.randrange(1, len(train))
        prefixes.append(Prefix(history=train[:pos], next_item=train[pos]))
    return prefixes


def _example(prefix: Prefix, candidates: list[int], rng: random.Random) -> Example:
    rng.shuffle(candidates)
    return Example(history=prefix.history, candidates=candidates, answer=candidates.index(prefix.next_item))


def random_examples(seqs: Sequences, prefixes: list[Prefix], num_candidates: int, seed: int) -> list[Example]:
    """Each prefix's next item among `num_candidates - 1` random items the user has not seen, shuffled."""
    rng = random.Random(seed)
    examples = []
    for prefix in prefixes:
        seen = {*prefix.history, prefix.next_item}
        negatives: set[int] = set()
        while len(negatives) < num_candidates - 1:
            item = rng.randint(1, seqs.num_items)
            if item not in seen:
                negatives.add(item)
        examples.append(_example(prefix, [prefix.next_item, *sorted(negatives)], rng))
    return examples


def candidate_examples(prefixes: list[Prefix], candidates: list[list[int]], seed: int) -> list[Example]:
    """What the ranker will rank, as LlamaRec trains it: each prefix's LRURec candidates (its top-k there), the
    next item put in place of the last one where LRURec missed it, positions shuffled so that the answer's
    label says nothing of LRURec's order."""
    rng = random.Random(seed)
    examples = []
    for prefix, found in zip(prefixes, candidates, strict=True):
        pool = list(found)
        if prefix.next_item not in pool:
            pool[-1] = prefix.next_item
        examples.append(_example(prefix, pool, rng))
    return examples


@dataclass(frozen=True)
class EvalCase:
    history: list[int]
    candidates: list[int]  # LRURec's top-k, in its order
    scores: list[float]  # LRURec's score of each candidate, which the served order fuses with the LLM's
    target: int  # the held-out item, which may be missing from the candidates


def evaluation_cases(seqs: Sequences, candidates: list[list[int]], scores: list[list[float]],
                     stage: str) -> list[EvalCase]:
    """One case per user: its history before the held-out item, LRURec's candidates for it and their scores, the
    item."""
    histories, targets = split(seqs, stage)
    return [EvalCase(h, c, s, t) for h, c, s, t in zip(histories, candidates, scores, targets, strict=True)]
