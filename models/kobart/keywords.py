"""Keyword targets and outputs: a comma-separated list, as the seed's (query, keyword) TSV writes it."""

from __future__ import annotations

import re

SEPARATORS = re.compile(r"[,，、;\n]+")


def to_target(keywords: list[str]) -> str:
    return ", ".join(keywords)


def parse_keywords(text: str) -> list[str]:
    """Generated text to a clean list: split on commas, trimmed, empty pieces dropped, repeats removed."""
    found: list[str] = []
    for piece in SEPARATORS.split(text):
        word = " ".join(piece.split()).strip(" .\"'")
        if word and word not in found:
            found.append(word)
    return found


def set_scores(predicted: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """Exact-match precision, recall and F1 of keyword sets, micro-averaged over all keywords."""
    if len(predicted) != len(gold):
        raise ValueError("one predicted list per gold list")
    hits = sum(len(set(p) & set(g)) for p, g in zip(predicted, gold, strict=True))
    n_pred, n_gold = sum(len(set(p)) for p in predicted), sum(len(set(g)) for g in gold)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "texts": len(gold)}
