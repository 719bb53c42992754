"""EngineTurns: requests for one engine overlap (so vLLM can batch them), never with another engine's, and a
waiting engine gets its turn while the other keeps receiving requests."""

from __future__ import annotations

import asyncio

from deployments.servers.engine_turns import EngineTurns


async def test_engines_take_turns_and_neither_starves() -> None:
    turns = EngineTurns()
    busy: dict[str, int] = {"base": 0, "ranker": 0}
    most_at_once = {"base": 0, "ranker": 0}
    finished: list[str] = []

    async def request(engine: str, seconds: float) -> None:
        async with turns.turn(engine):
            busy[engine] += 1
            most_at_once[engine] = max(most_at_once[engine], busy[engine])
            assert all(n == 0 for other, n in busy.items() if other != engine), busy
            await asyncio.sleep(seconds)
            busy[engine] -= 1
        finished.append(engine)

    async def stream_of(engine: str, count: int, gap: float) -> None:
        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(request(engine, 0.05)))
            await asyncio.sleep(gap)
        await asyncio.gather(*tasks)

    # The base engine keeps receiving requests faster than they finish; the ranker's still get in.
    await asyncio.gather(stream_of("base", 60, 0.005), stream_of("ranker", 10, 0.02))
    assert most_at_once["base"] > 1  # requests for one engine overlap within its turn
    ranker_done = [i for i, engine in enumerate(finished) if engine == "ranker"]
    # Every ranker request finished while base requests were still arriving and finishing around it.
    assert len(ranker_done) == 10 and ranker_done[-1] < len(finished) - 5, finished
    assert turns.in_flight == 0


async def test_a_cancelled_waiter_does_not_hold_the_turn() -> None:
    turns = EngineTurns()
    release = asyncio.Event()

    async def hold() -> None:
        async with turns.turn("base"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(turns.turn("ranker").__aenter__())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    # With the ranker's waiter gone, the base engine admits new requests again.
    async with asyncio.timeout(1):
        async with turns.turn("base"):
            pass
    release.set()
    await holder
