"""One engine computing at a time, where a replica holds several (the base engine and merged copies on CPU).

Each engine's worker runs an OpenMP team over the same cores; two teams computing at once preempt each other's
threads, and a team waits for its slowest thread at every barrier, so both slow down far more than they share.
Requests therefore take turns by engine: an engine keeps admitting requests (vLLM batches them) until a request
for another engine waits; then new arrivals wait too, and the turn passes when its requests in flight are done.

An engine whose requests run long (the base engine's generations: seconds) can be registered as pausable. A
request for another engine then does not wait for those generations to end: once the pausable engine has computed
for `slice_s`, it is paused with its requests kept (vLLM's `pause_generation(mode="keep")`: they stay frozen with
their KV cache), the other engine takes the cores, and when that engine's requests are done the paused one resumes
where it stopped. Its generations lose the time the others took, not their work; a ranking (one forward pass)
waits at most about `slice_s` behind them instead of their whole length (docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Switch = Callable[[], Awaitable[None]]


class EngineTurns:
    def __init__(self, slice_s: float = 0.5) -> None:
        self.slice_s = slice_s
        self._changed = asyncio.Condition()
        self._waiting: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._switches: dict[str, tuple[Switch, Switch]] = {}
        self.paused: list[str] = []  # engines paused with requests in flight, the most recent last
        self.owner: str | None = None
        self._since = 0.0  # when the owner got the cores

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    def pausable(self, engine: str, pause: Switch, resume: Switch) -> None:
        self._switches[engine] = (pause, resume)

    def _decide(self, engine: str, now: float) -> str | float | None:
        """'admit', 'preempt' (pause the owner, then admit), or wait: None until something changes, or the seconds
        until the owner may be paused."""
        owner = self.owner
        others_wait = any(n for other, n in self._waiting.items() if other != engine)
        if owner is None or self._in_flight[owner] == 0:
            # The turn goes to another engine that waits, if one does, before this one's owner runs again.
            return "admit" if engine != owner or not others_wait else None
        if engine == owner:
            # A paused engine waits too: after a slice, the owner's new requests let it resume.
            paused_long = self.paused and now - self._since >= self.slice_s
            return "admit" if not others_wait and not paused_long else None
        if owner in self._switches and owner not in self.paused:
            left = self._since + self.slice_s - now
            return "preempt" if left <= 0 else left
        return None

    @asynccontextmanager
    async def turn(self, engine: str) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        async with self._changed:
            self._waiting[engine] += 1
            try:
                while not isinstance(decision := self._decide(engine, loop.time()), str):
                    try:
                        await asyncio.wait_for(self._changed.wait(), decision)
                    except TimeoutError:
                        pass
                if decision == "preempt":
                    paused = self.owner
                    # Shielded: an engine left half-switched would hold its requests forever.
                    await asyncio.shield(self._switches[paused][0]())
                    self.paused.append(paused)
                if engine != self.owner:
                    self.owner, self._since = engine, loop.time()
                self._in_flight[engine] += 1
            finally:
                self._waiting[engine] -= 1
                # Others waiting for this engine may enter now; a cancelled waiter no longer holds a turn back.
                self._changed.notify_all()
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight[engine] -= 1
                if engine == self.owner and self._in_flight[engine] == 0 and self.paused:
                    resumed = self.paused.pop()
                    await asyncio.shield(self._switches[resumed][1]())
                    self.owner, self._since = resumed, loop.time()
                self._changed.notify_all()
