"""One engine computing at a time, where a replica holds several (the base engine and merged copies on CPU).

Each engine's worker runs an OpenMP team over the same cores; two teams computing at once preempt each other's
threads, and a team waits for its slowest thread at every barrier, so both slow down far more than they share.
Requests therefore take turns by engine: an engine keeps admitting requests (vLLM batches them) until a request
for another engine waits; then new arrivals wait too, its requests in flight finish, and the turn passes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class EngineTurns:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._waiting: Counter[str] = Counter()
        self.owner: str | None = None
        self.in_flight = 0

    def _admits(self, engine: str) -> bool:
        others_wait = any(n for other, n in self._waiting.items() if other != engine)
        if self.in_flight == 0:
            # The turn goes to another engine that waits, if one does, before this one's owner runs again.
            return engine != self.owner or not others_wait
        return engine == self.owner and not others_wait

    @asynccontextmanager
    async def turn(self, engine: str) -> AsyncIterator[None]:
        async with self._changed:
            self._waiting[engine] += 1
            try:
                await self._changed.wait_for(lambda: self._admits(engine))
                self.owner = engine
                self.in_flight += 1
            finally:
                self._waiting[engine] -= 1
                # Others waiting for this engine may enter now; a cancelled waiter no longer holds a turn back.
                self._changed.notify_all()
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()
