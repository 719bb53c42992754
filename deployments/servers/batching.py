"""What the batched model servers (candidates, retriever, keywords) share: Serve's `@serve.batch` sized from the
settings with a histogram of batch sizes, and a batch computed by each request's own model version, since
requests that started before a swap to a new version may share a batch with those after it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from ray.serve.metrics import Histogram

T = TypeVar("T")
M = TypeVar("M")
R = TypeVar("R")


def batched(method, max_size: int, wait_ms: float, metric: str, description: str) -> Histogram:
    """Size the `@serve.batch` method `method` of a replica; the histogram to observe each batch's size with."""
    method.set_max_batch_size(max_size)
    method.set_batch_wait_timeout_s(wait_ms / 1000)
    return Histogram(metric, description=description, boundaries=[1, 2, 4, 8, 16, 32, 64])


async def per_model(items: list[T], model_of: Callable[[T], M], run: Callable[[M, list[T]], list[R]],
                    in_thread: bool = True) -> list[R]:
    """`run(model, its items)` for each distinct model among `items`; the results in the items' order.

    `in_thread` runs it in a thread, so that the replica keeps taking requests meanwhile: for work of hundreds of
    milliseconds (beam search). Work of milliseconds to tens of them (candidates, retrieval) is faster on the
    replica's own event loop: beside it the requests' path and the batch's Python code take turns on the GIL, 1.2x
    (candidates) and 1.5x (retrieval) fewer answers per second at 32 clients (docs/benchmarks.md), and requests
    that arrive meanwhile wait for the next batch either way (Serve runs one batch at a time)."""
    results: list[R | None] = [None] * len(items)
    for model in {id(model_of(x)): model_of(x) for x in items}.values():
        rows = [i for i, x in enumerate(items) if model_of(x) is model]
        chosen = [items[i] for i in rows]
        found = await asyncio.to_thread(run, model, chosen) if in_thread else run(model, chosen)
        for i, result in zip(rows, found, strict=True):
            results[i] = result
    return results
