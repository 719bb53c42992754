"""Server-sent events gathered over a short interval before they cross the handle, as Ray Serve LLM batches its
streams (`stream_batching_interval_ms`). Each item crossing a handle and then the proxy wakes three processes; on a
CPU node those wakeups preempt the engine's OpenMP threads, and one preempted thread stalls the whole step
(docs/benchmarks.md, "OpenAI serving"). The first event goes out at once, so the time to the first token is not
lengthened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import TypeVar

T = TypeVar("T")

_END = object()


async def batched_events(items: AsyncIterator[T | str], interval_s: float) -> AsyncIterator[T | str]:
    """`items` as they come, except that a stream's `data:` lines are joined: the first batch is what is there when
    the first line comes (a chat's role chunk and its first token come together), then one batch per `interval_s`.
    Closing this closes `items` (and so aborts the generation)."""
    if interval_s <= 0:
        async for item in items:
            yield item
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        try:
            async for item in items:
                queue.put_nowait(item)
        finally:
            queue.put_nowait(_END)

    reader = asyncio.create_task(read())
    try:
        first = True
        while (item := await queue.get()) is not _END:
            if not isinstance(item, str):
                yield item
                continue
            if not first:
                # Waiting on the reader, which a timeout does not cancel: the interval, or the end of the stream.
                await asyncio.wait({reader}, timeout=interval_s)
            first = False
            pieces = [item]
            while not queue.empty():
                pieces.append(queue.get_nowait())
            ended = pieces[-1] is _END
            yield "".join(pieces[:-1] if ended else pieces)
            if ended:
                break
        await reader
    finally:
        reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader
