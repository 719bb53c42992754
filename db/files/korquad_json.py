"""Reading the KorQuAD 1.0 JSON (SQuAD layout: articles, paragraphs with a context, questions with answers)."""

from __future__ import annotations

import json
from pathlib import Path


def paragraphs(path: Path) -> list[dict]:
    return [p for article in json.loads(path.read_text(encoding="utf-8"))["data"] for p in article["paragraphs"]]


def questions(path: Path) -> list[str]:
    """Every distinct question, in file order."""
    return list(dict.fromkeys(qa["question"] for p in paragraphs(path) for qa in p["qas"]))
