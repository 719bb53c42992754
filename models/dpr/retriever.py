"""Hybrid retrieval over a passage collection: dense (DPR + FAISS over chunks, merged to passages), sparse
(BM25 over passages), or both fused by reciprocal rank. Pure model code: passages come in as records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from models.dpr.chunking import chunk_passages, merge_chunk_hits
from models.dpr.dense_index import DenseIndex, IndexConfig
from models.dpr.encoder import DualEncoder
from models.dpr.fusion import reciprocal_rank_fusion, relative_score_fusion
from models.dpr.sparse_index import SparseIndex

Mode = Literal["dense", "sparse", "hybrid"]
Fusion = Literal["rrf", "score"]
CHUNKS_FILE, INDEX_META_FILE = "chunks.npy", "index.json"


@dataclass(frozen=True)
class Passage:
    id: int
    document: str
    title: str
    source: str | None
    text: str


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    sparse_score: float | None = None
    sparse_rank: int | None = None


@dataclass
class DenseSide:
    """The encoder, the FAISS index over chunks, and which passage each chunk label belongs to."""

    encoder: DualEncoder
    index: DenseIndex
    chunk_passage: np.ndarray  # label -> passage id
    chunk_tokens: int

    def indexed_passages(self) -> set[int]:
        return set(self.chunk_passage.tolist())

    def add(self, passages: list[Passage], progress: bool = False) -> DenseSide:
        chunks = chunk_passages([(p.id, p.text) for p in passages], self.encoder.tokenizer, self.chunk_tokens)
        if not chunks:
            return self
        vectors = self.encoder.encode_passages([c.text for c in chunks], progress=progress)
        start = len(self.chunk_passage)
        # Added to a copy: a replica may be searching this index in another thread meanwhile.
        index = self.index.copy() if len(self.index) else self.index
        index.train(vectors)
        index.add(vectors, np.arange(start, start + len(chunks)))
        labels = np.concatenate([self.chunk_passage, np.array([c.passage_id for c in chunks], dtype=np.int64)])
        return replace(self, index=index, chunk_passage=labels)

    def save(self, folder: Path, meta: dict) -> None:
        self.index.save(folder)
        np.save(folder / CHUNKS_FILE, self.chunk_passage)
        (folder / INDEX_META_FILE).write_text(json.dumps({**meta, "chunk_tokens": self.chunk_tokens,
                                                          "chunks": len(self.chunk_passage)}))

    @classmethod
    def load(cls, folder: Path, encoder: DualEncoder) -> DenseSide:
        meta = json.loads((folder / INDEX_META_FILE).read_text())
        return cls(encoder, DenseIndex.load(folder), np.load(folder / CHUNKS_FILE), meta["chunk_tokens"])


def build_dense(encoder: DualEncoder, passages: list[Passage], config: IndexConfig, chunk_tokens: int,
                progress: bool = False) -> DenseSide:
    empty = DenseSide(encoder, DenseIndex.empty(encoder.dim, config), np.zeros(0, dtype=np.int64), chunk_tokens)
    return empty.add(passages, progress=progress)


class Retriever:
    """Immutable once built; `with_collection` returns a new one for a changed collection."""

    def __init__(self, passages: list[Passage], dense: DenseSide | None, rrf_k: int = 60, depth: int = 100,
                 dense_weight: float = 1.0, fusion: Fusion = "rrf"):
        self.passages = {p.id: p for p in passages}
        self.dense, self.rrf_k, self.depth, self.dense_weight = dense, rrf_k, depth, dense_weight
        self.fusion = fusion
        self.sparse = SparseIndex([p.text for p in passages], [p.id for p in passages])

    def with_collection(self, passages: list[Passage]) -> Retriever:
        """The same encoder and index over a new set of passages: new ones are chunked, encoded and added;
        removed ones stay in FAISS but are never returned (a rebuild drops them)."""
        dense = self.dense
        if dense is not None:
            indexed = dense.indexed_passages()
            dense = dense.add([p for p in passages if p.id not in indexed])
        return Retriever(passages, dense, self.rrf_k, self.depth, self.dense_weight, self.fusion)

    def encode(self, questions: list[str]) -> np.ndarray | None:
        return None if self.dense is None else self.dense.encoder.encode_questions(questions)

    def search(self, questions: list[str], top_k: int, mode: Mode, vectors: np.ndarray | None = None,
               dense_weight: float | None = None, sparse_queries: list[str] | str | None = None,
               keep: Callable[[int], bool] | None = None) -> list[list[Hit]]:
        """`dense_weight` is the dense ranking's weight in hybrid fusion (BM25's is 1); None: the default.
        `sparse_queries` replace the questions for BM25 (e.g. expanded with keywords). With `keep`, only
        passages it accepts are returned, and the whole collection is searched so that top_k of them remain."""
        if isinstance(sparse_queries, str):
            sparse_queries = [sparse_queries]
        if mode != "sparse" and self.dense is None:
            raise LookupError("dense retrieval needs a trained DPR encoder and its index")
        if mode != "sparse" and vectors is None:
            vectors = self.encode(questions)
        depth = len(self.passages) if keep is not None else max(top_k, self.depth)
        dense = self._dense(vectors, depth) if mode != "sparse" else [[] for _ in questions]
        sparse = self.sparse.search(sparse_queries or questions, depth) if mode != "dense" else [[] for _ in questions]
        weight = self.dense_weight if dense_weight is None else dense_weight
        return [self._combine(d, s, top_k, mode, weight, keep) for d, s in zip(dense, sparse, strict=True)]

    def _dense(self, vectors: np.ndarray, depth: int) -> list[list[tuple[int, float]]]:
        # Several chunks of one passage can fill the top; search deeper so `depth` passages remain.
        scores, labels = self.dense.index.search(vectors, min(len(self.dense.index), depth * 3))
        results = []
        for row_scores, row_labels in zip(scores, labels, strict=True):
            keep = row_labels >= 0
            pids = self.dense.chunk_passage[row_labels[keep]].tolist()
            merged = merge_chunk_hits(pids, row_scores[keep].tolist())
            results.append([(pid, s) for pid, s in merged if pid in self.passages][:depth])
        return results

    def _combine(self, dense: list[tuple[int, float]], sparse: list[tuple[int, float]], top_k: int,
                 mode: Mode, dense_weight: float, keep: Callable[[int], bool] | None = None) -> list[Hit]:
        d_rank = {pid: (rank, s) for rank, (pid, s) in enumerate(dense, 1)}
        s_rank = {pid: (rank, s) for rank, (pid, s) in enumerate(sparse, 1)}
        if mode == "hybrid":
            # BM25 first: equal fused scores keep its order.
            if self.fusion == "rrf":
                order = reciprocal_rank_fusion([[p for p, _ in sparse], [p for p, _ in dense]], self.rrf_k,
                                               [1.0, dense_weight])
            else:
                order = relative_score_fusion([sparse, dense], [1.0, dense_weight])
        else:
            order = dense if mode == "dense" else sparse
        hits = []
        for pid, score in order:
            if len(hits) == top_k:
                break
            if keep is not None and not keep(pid):  # asked lazily: only until top_k are kept
                continue
            d, s = d_rank.get(pid), s_rank.get(pid)
            hits.append(Hit(self.passages[pid], float(score), d and float(d[1]), d and d[0], s and float(s[1]),
                            s and s[0]))
        return hits
