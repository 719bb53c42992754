"""Stream events batched before they cross the handle: the first at once, the rest per interval, nothing lost,
and closing the batches closes the generation under them."""

from __future__ import annotations

import asyncio
import time

from deployments.servers.stream_batches import batched_events


async def tokens(n: int, every_s: float, closed: list[bool]):
    try:
        yield {"head": True}
        for i in range(n):
            await asyncio.sleep(every_s)
            yield f"data: {i}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        closed.append(True)


async def collect(interval_s: float) -> list[tuple[float, object]]:
    started, got = time.monotonic(), []
    async for item in batched_events(tokens(12, 0.02, []), interval_s):
        got.append((time.monotonic() - started, item))
    return got


def test_first_event_at_once_then_one_batch_per_interval_and_nothing_lost() -> None:
    got = asyncio.run(collect(0.1))
    assert got[0][1] == {"head": True}
    assert got[1][1] == "data: 0\n\n" and got[1][0] < 0.08  # not held for the interval
    batches = [item for _, item in got[1:]]
    assert "".join(batches) == "".join(f"data: {i}\n\n" for i in range(12)) + "data: [DONE]\n\n"
    assert len(batches) <= 5 and all(b.count("data: ") >= 2 for b in batches[1:-1])


def test_interval_zero_passes_every_event_through() -> None:
    got = asyncio.run(collect(0))
    assert [item for _, item in got[1:]] == [f"data: {i}\n\n" for i in range(12)] + ["data: [DONE]\n\n"]


def test_closing_the_batches_closes_the_generation() -> None:
    async def run() -> list[bool]:
        closed: list[bool] = []
        batches = batched_events(tokens(1000, 0.01, closed), 0.05)
        await anext(batches)
        await anext(batches)
        await batches.aclose()
        await asyncio.sleep(0)
        return closed

    assert asyncio.run(run()) == [True]
