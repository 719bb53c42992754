"""Question-passage records for training and evaluating the retriever, split by document.

A question's positive is the first chunk of its own document that contains the answer text (KorQuAD's
answers are spans of their paragraph), so training sees the same chunks the index holds.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from models.dpr.chunking import Chunk

SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
MIN_SENTENCE_CHARS = 10


@dataclass(frozen=True)
class QARecord:
    question: str
    answer: str
    document: str  # the document's external id


@dataclass(frozen=True)
class Example:
    question: str
    positive: str
    hard_negative: str | None = None


def split_by_document(records: list[QARecord], holdout: float, seed: int = 0) -> tuple[list[QARecord],
                                                                                           list[QARecord]]:
    """Whole documents go to one side, so no held-out question's passage was seen in training."""
    if not 0 <= holdout < 1:
        raise ValueError("holdout must be in [0, 1)")
    documents = sorted({r.document for r in records})
    random.Random(seed).shuffle(documents)
    held = set(documents[: round(len(documents) * holdout)])
    return [r for r in records if r.document not in held], [r for r in records if r.document in held]


def training_examples(records: list[QARecord], chunks_by_document: dict[str, list[Chunk]],
                      hard_negatives: dict[str, str] | None = None) -> list[Example]:
    """One example per question whose answer appears in a chunk of its document; others are skipped."""
    examples = []
    for r in records:
        positive = next((c.text for c in chunks_by_document.get(r.document, []) if r.answer in c.text), None)
        if positive is not None:
            examples.append(Example(r.question, positive, (hard_negatives or {}).get(r.question)))
    return examples


def inverse_cloze_examples(chunks: list[Chunk], seed: int = 0, keep_probability: float = 0.1) -> list[Example]:
    """The inverse cloze task (Lee et al., 2019): a sentence of a chunk is the question, the rest of the chunk
    the positive (the whole chunk with `keep_probability`, so exact overlap is not all it learns). It needs
    only passage text, so every passage of the collection teaches the encoders its words."""
    rng = random.Random(seed)
    examples = []
    for chunk in chunks:
        sentences = [s for s in SENTENCE_END.split(chunk.text) if len(s.strip()) >= MIN_SENTENCE_CHARS]
        if len(sentences) < 2:
            continue
        pick = rng.randrange(len(sentences))
        rest = chunk.text if rng.random() < keep_probability else chunk.text.replace(sentences[pick], " ").strip()
        examples.append(Example(sentences[pick].strip(), rest))
    return examples
