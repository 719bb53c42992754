"""Passages cut into chunks of a token budget for the dense index; hits are mapped back to whole passages.

A chunk never spans two passages, so it never crosses a document boundary either. Chunks are cut at the
encoder tokenizer's token boundaries (its offsets), so a chunk's text is the passage's own characters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    passage_id: int
    text: str


def chunk_passages(passages: list[tuple[int, str]], tokenizer, max_tokens: int = 100) -> list[Chunk]:
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if not passages:
        return []
    # Whole passages, longer than the model takes: they are only cut here (hence no length warning).
    encoded = tokenizer([text for _, text in passages], add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)
    chunks: list[Chunk] = []
    for (passage_id, text), offsets in zip(passages, encoded["offset_mapping"], strict=True):
        if not offsets:
            chunks.append(Chunk(passage_id, text))
            continue
        for start in range(0, len(offsets), max_tokens):
            window = offsets[start : start + max_tokens]
            # Keep the text between the previous chunk's end and this window's first token with this chunk.
            begin = 0 if start == 0 else offsets[start - 1][1]
            end = len(text) if start + max_tokens >= len(offsets) else window[-1][1]
            piece = text[begin:end].strip()
            if piece:
                chunks.append(Chunk(passage_id, piece))
    return chunks


def merge_chunk_hits(passage_ids: list[int], scores: list[float]) -> list[tuple[int, float]]:
    """Chunk hits (best first) to passage hits: one per passage, scored by its best chunk, best first."""
    best: dict[int, float] = {}
    for pid, score in zip(passage_ids, scores, strict=True):
        if pid not in best or score > best[pid]:
            best[pid] = score
    return sorted(best.items(), key=lambda kv: kv[1], reverse=True)
