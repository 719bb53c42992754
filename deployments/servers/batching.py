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


async def per_model(items: list[T], model_of: Callable[[T], M], run: Callable[[M, list[T]], list[R]]) -> list[R]:
    """`run(model, its items)` for each distinct model among `items`, in a thread (torch and FAISS release the GIL,
    so the replica keeps accepting and batching requests); the results in the items' order."""
    results: list[R | None] = [None] * len(items)
    for model in {id(model_of(x)): model_of(x) for x in items}.values():
        rows = [i for i, x in enumerate(items) if model_of(x) is model]
        for i, result in zip(rows, await asyncio.to_thread(run, model, [items[i] for i in rows]), strict=True):
            results[i] = result
    return results
