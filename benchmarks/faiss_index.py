"""FAISS index kinds on synthetic vectors: build time, search latency and recall@10 against the exact index.

    .venv/bin/python benchmarks/faiss_index.py --sizes 10000 1000000

Vectors are drawn around random centres (clustered, as sentence embeddings are) at the dimension of the
encoder (`--dim`, 768 for klue/bert-base), normalised; queries are perturbed copies of stored vectors.
Search latency is one query at a time (as the retriever's small batches are), median over `--queries`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import faiss
import numpy as np

from models.dpr.dense_index import DenseIndex, IndexConfig


def vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(16, n // 500), dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in slices: 1M x 768 of float64 noise would not fit beside the rest
        stop = min(n, start + 100_000)
        out[start:stop] = centres[rng.integers(0, len(centres), stop - start)] + 0.5 * rng.normal(
            size=(stop - start, dim)).astype(np.float32)
    faiss.normalize_L2(out)
    return out


def measure(kind: str, data: np.ndarray, queries: np.ndarray, exact: np.ndarray | None, config: IndexConfig) -> dict:
    started = time.perf_counter()
    index = DenseIndex.build(data, np.arange(len(data)), config)
    build_s = time.perf_counter() - started
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(index.search(q[None, :], 10)[1][0])
        latencies.append(time.perf_counter() - t)
    recall = 1.0 if exact is None else float(np.mean([len(set(a) & set(b)) / 10
                                                      for a, b in zip(exact, found, strict=True)]))
    return {"kind": kind, "build_s": round(build_s, 2), "search_ms_p50": round(1000 * statistics.median(latencies), 3),
            "recall@10": round(recall, 3), "found": np.array(found)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivfpq"])
    args = p.parse_args()
    rng = np.random.default_rng(0)
    results = []
    for n in args.sizes:
        data = vectors(n, args.dim, rng)
        queries = data[rng.integers(0, n, args.queries)] + 0.01 * rng.normal(size=(args.queries, args.dim)).astype(
            np.float32)
        # IVF lists ~ 4 sqrt(n) as FAISS advises, capped so training has 39 points a list; PQ codes of dim/8
        # bytes (16 for 128 dimensions: 32x smaller than the float vectors).
        lists = int(min(4 * np.sqrt(n), n / 39))
        config = {"flat": IndexConfig(), "hnsw": IndexConfig(kind="hnsw"),
                  "ivfpq": IndexConfig(kind="ivfpq", ivf_lists=lists, pq_subquantizers=args.dim // 8, ivf_probe=16)}
        exact = None
        for kind in args.kinds:
            row = measure(kind, data, queries, exact, config[kind])
            if kind == "flat":
                exact = row["found"]
            row.pop("found")
            results.append({"vectors": n, "dim": args.dim, **row})
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
