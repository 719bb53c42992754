"""The LRU's parallel scan against the step-by-step recurrence, same weights, at L = 50 and 200.

    .venv/bin/python benchmarks/lru_scan.py
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from models.lrurec.data import left_pad
from models.lrurec.model import LRURec, LRURecConfig, parallel_scan, sequential_scan


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(batch: int = 16, repeats: int = 15) -> dict:
    torch.manual_seed(0)
    model = LRURec(LRURecConfig(num_items=3650, hidden=64, blocks=2))
    results = {}
    for length in (50, 200):
        items = left_pad([torch.randint(1, 3651, (length,)).tolist() for _ in range(batch)], length)
        row = {}
        for name, scan in (("parallel", parallel_scan), ("sequential", sequential_scan)):
            def forward_backward(scan=scan, items=items):
                model.zero_grad()
                model.hidden_states(items, scan=scan).sum().backward()

            row[f"{name}_ms"] = round(1000 * timed(forward_backward, repeats), 2)
        row["speedup"] = round(row["sequential_ms"] / row["parallel_ms"], 2)
        results[f"L={length}"] = row
    return {"batch": batch, "hidden": 64, "blocks": 2, "what": "forward+backward, median ms", **results}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
