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


class PausableEngine:
    """Generations that advance only while the engine is not paused, as vLLM's do under `pause_generation(keep)`."""

    def __init__(self, turns: EngineTurns) -> None:
        self.turns, self.paused, self.switches = turns, False, []
        self.others_computing = self.generating = 0
        turns.pausable("base", self.pause, self.resume)

    async def pause(self) -> None:
        await asyncio.sleep(0.005)  # an engine stops after its current step
        self.paused = True
        self.switches.append("pause")

    async def resume(self) -> None:
        self.paused = False
        self.switches.append("resume")

    async def generate(self, work_s: float) -> None:
        async with self.turns.turn("base"):
            self.generating += 1
            done = 0.0
            while done < work_s:
                await asyncio.sleep(0.01)
                if not self.paused:
                    assert self.others_computing == 0  # never two engines computing at once
                    done += 0.01
            self.generating -= 1

    async def other(self, seconds: float) -> float:
        started = asyncio.get_running_loop().time()
        async with self.turns.turn("ranker"):
            assert self.paused or self.generating == 0
            self.others_computing += 1
            await asyncio.sleep(seconds)
            self.others_computing -= 1
        return asyncio.get_running_loop().time() - started


async def test_a_long_generation_is_paused_for_a_short_request_and_finishes_its_work() -> None:
    turns = EngineTurns(slice_s=0.1)
    engine = PausableEngine(turns)
    generations = [asyncio.create_task(engine.generate(1.0)) for _ in range(3)]
    await asyncio.sleep(0.2)
    waits = []
    for _ in range(4):
        waits.append(await engine.other(0.05))
        await asyncio.sleep(0.15)
    await asyncio.gather(*generations)
    # Without pausing, each would have waited for the generations' remaining ~0.8 s.
    assert max(waits) < 0.3, waits
    assert engine.switches == ["pause", "resume"] * 4 and not engine.paused
    assert turns.in_flight == 0 and turns.paused == []


async def test_a_paused_engine_gets_its_slices_while_short_requests_keep_coming() -> None:
    turns = EngineTurns(slice_s=0.1)
    engine = PausableEngine(turns)
    generation = asyncio.create_task(engine.generate(0.5))
    await asyncio.sleep(0.05)

    async def client() -> None:
        while not generation.done():
            await engine.other(0.03)

    started = asyncio.get_running_loop().time()
    await asyncio.gather(generation, client(), client())
    # 0.5 s of its own work in slices of >= 0.1 s, between the short requests' turns: not starved.
    assert asyncio.get_running_loop().time() - started < 2.0
    assert engine.switches.count("pause") >= 2 and engine.switches[-1] == "resume"
