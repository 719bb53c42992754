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
class Query:
    """One search: `dense_weight` is the dense ranking's weight in hybrid fusion (BM25's is 1; None: the
    retriever's default); `sparse_query` replaces the question for BM25 (e.g. expanded with keywords); with `keep`,
    only passages it accepts are returned, and the whole collection is searched so that top_k of them remain."""

    question: str
    top_k: int
    mode: Mode
    dense_weight: float | None = None
    sparse_query: str | None = None
    keep: Callable[[int], bool] | None = None


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


def load_dense(index_dir: Path, device: str = "cpu") -> DenseSide:
    """An index folder (as `tandem index build` writes it) with the DPR encoder it was built by."""
    meta = json.loads((index_dir / INDEX_META_FILE).read_text())
    return DenseSide.load(index_dir, DualEncoder.load(Path(meta["dpr_artifact"])).to(device))


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
        """The questions searched alike (see `Query`); `vectors`, when given, are the questions' encodings."""
        if isinstance(sparse_queries, str):
            sparse_queries = [sparse_queries]
        sparse_queries = sparse_queries or [None] * len(questions)
        return self.search_many([Query(q, top_k, mode, dense_weight, sq, keep)
                                 for q, sq in zip(questions, sparse_queries, strict=True)], vectors)

    def search_many(self, queries: list[Query], vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Every query of a batch at once: one encoder pass, and one FAISS search and one BM25 retrieval for each
        search depth among them; then each query's own fusion. `vectors`, when given, encode the queries that are
        not sparse, in order."""
        dense_rows = [i for i, q in enumerate(queries) if q.mode != "sparse"]
        sparse_rows = [i for i, q in enumerate(queries) if q.mode != "dense"]
        if dense_rows and self.dense is None:
            raise LookupError("dense retrieval needs a trained DPR encoder and its index")
        if dense_rows and vectors is None:
            vectors = self.encode([queries[i].question for i in dense_rows])
        vector_row = {i: n for n, i in enumerate(dense_rows)}
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        sparse: list[list[tuple[int, float]]] = [[] for _ in queries]
        for depth, rows in self._by_depth(queries, dense_rows).items():
            for i, found in zip(rows, self._dense(vectors[[vector_row[i] for i in rows]], depth), strict=True):
                dense[i] = found
        for depth, rows in self._by_depth(queries, sparse_rows).items():
            texts = [queries[i].sparse_query or queries[i].question for i in rows]
            for i, found in zip(rows, self.sparse.search(texts, depth), strict=True):
                sparse[i] = found
        return [self._combine(dense[i], sparse[i], q.top_k, q.mode,
                              self.dense_weight if q.dense_weight is None else q.dense_weight, q.keep)
                for i, q in enumerate(queries)]

    def _by_depth(self, queries: list[Query], rows: list[int]) -> dict[int, list[int]]:
        """Rows grouped by how deep each ranking is read (an approximate index can answer a deeper search
        differently, so each depth is searched as it would be alone)."""
        groups: dict[int, list[int]] = {}
        for i in rows:
            q = queries[i]
            depth = len(self.passages) if q.keep is not None else max(q.top_k, self.depth)
            groups.setdefault(depth, []).append(i)
        return groups

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
