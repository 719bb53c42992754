"""A FAISS inner-product index with its own id map: exact (`flat`) for small collections, `hnsw` or `ivfpq`
for large ones. Saved as the FAISS file plus a JSON header; ids are the caller's int64 keys."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["flat", "hnsw", "ivfpq"]
INDEX_FILE, HEADER_FILE = "dense.faiss", "dense.json"


@dataclass(frozen=True)
class IndexConfig:
    kind: IndexKind = "flat"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    ivf_lists: int = 1024
    pq_subquantizers: int = 16
    ivf_probe: int = 16


class DenseIndex:
    def __init__(self, index: faiss.Index, config: IndexConfig):
        self.index, self.config = index, config
        self._apply_search_params()

    @classmethod
    def empty(cls, dim: int, config: IndexConfig) -> DenseIndex:
        ip = faiss.METRIC_INNER_PRODUCT
        if config.kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        elif config.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, ip)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
        elif config.kind == "ivfpq":
            if dim % config.pq_subquantizers:
                raise ValueError(f"ivfpq needs the dimension {dim} divisible by pq_subquantizers "
                                 f"{config.pq_subquantizers}")
            inner = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, config.ivf_lists, config.pq_subquantizers, 8, ip)
        else:
            raise ValueError(f"unknown index kind {config.kind!r}: use flat, hnsw or ivfpq")
        return cls(faiss.IndexIDMap2(inner), config)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, config: IndexConfig) -> DenseIndex:
        index = cls.empty(vectors.shape[1], config)
        index.train(vectors)
        index.add(vectors, ids)
        return index

    def _apply_search_params(self) -> None:
        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else None
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = self.config.hnsw_ef_search
        elif isinstance(inner, faiss.IndexIVF):
            inner.nprobe = self.config.ivf_probe

    def train(self, vectors: np.ndarray) -> None:
        if self.index.is_trained:
            return
        inner = faiss.downcast_index(self.index.index)
        # k-means wants 39 points per centroid: nlist coarse centroids, 256 per product-quantizer code book.
        needed = max(inner.nlist, 256) * 39 if isinstance(inner, faiss.IndexIVF) else 0
        if len(vectors) < needed:
            raise ValueError(f"an ivfpq index with {inner.nlist} lists needs at least {needed} vectors to train, "
                             f"got {len(vectors)}: use the flat index below that size")
        self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if len(vectors):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids, best first; id -1 where fewer than k vectors exist."""
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def copy(self) -> DenseIndex:
        return DenseIndex(faiss.clone_index(self.index), self.config)

    def __len__(self) -> int:
        return self.index.ntotal

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / INDEX_FILE))
        (folder / HEADER_FILE).write_text(json.dumps({"config": asdict(self.config), "count": len(self)}))

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        header = json.loads((folder / HEADER_FILE).read_text())
        return cls(faiss.read_index(str(folder / INDEX_FILE)), IndexConfig(**header["config"]))
