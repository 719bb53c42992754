"""Users' recent histories and item titles in the candidate deployment's memory, kept current by the database.

A request reads a user's history from PostgreSQL once; later requests take it from memory until
`NOTIFY interactions` names that user (a write, an update, a delete) or `NOTIFY items` says titles changed.
While the listening connection is down nothing is cached, and on every (re)connection the caches start empty,
so a notification missed meanwhile cannot leave a stale entry behind. A read that raced with a change to its
user answers its request but is not kept. Both caches are bounded, least recently used out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import asyncpg

from db.interactions import INTERACTIONS_CHANNEL, ITEMS_CHANNEL, RecentHistory, recent_history, titles
from db.pool import Database

log = logging.getLogger("tandem.candidates")
K, V = TypeVar("K"), TypeVar("V")
RECONNECT_S = 2.0


class LRU(Generic[K, V]):
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop_where(self, doomed: Callable[[V], bool]) -> None:
        for key in [k for k, v in self._items.items() if doomed(v)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()


class HistoryCache:
    def __init__(self, db: Database, max_users: int, max_titles: int):
        self.db = db
        self.histories: LRU[str, tuple[int, RecentHistory]] = LRU(max_users)  # user → (depth read, history)
        self.titles: LRU[str, str | None] = LRU(max_titles)
        # Invalidations are numbered; a read started at generation g is kept only if nothing it read changed since.
        self.generation = 0
        self._floor = 0  # reads started before this are never kept (everything changed, or the listener reconnected)
        self._changed: LRU[int, int] = LRU(100_000)  # user → generation of its latest change
        self.live = False  # the listener is connected: only then is anything kept
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _listen(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.db.url, timeout=5)
                await conn.add_listener(INTERACTIONS_CHANNEL, self._interactions_changed)
                await conn.add_listener(ITEMS_CHANNEL, self._items_changed)
                self._forget_all()
                self.live = True
                while not conn.is_closed():
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("history notifications lost; reading histories from the database",
                            extra={"error": str(exc)})
            finally:
                self.live = False
                self._forget_all()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(RECONNECT_S)

    def _forget_all(self) -> None:
        self.generation += 1
        self._floor = self.generation
        self.histories.clear()
        self.titles.clear()

    def _interactions_changed(self, conn, pid, channel, payload: str) -> None:
        if payload == "*":
            self._forget_all()
            return
        self.generation += 1
        changed = {int(u) for u in payload.split(",") if u}
        for user in changed:
            self._changed.put(user, self.generation)
        self.histories.drop_where(lambda entry: entry[1].user in changed)

    def _items_changed(self, conn, pid, channel, payload: str) -> None:
        self.generation += 1
        self.titles.clear()

    def _keep(self, started: int, user: int | None = None) -> bool:
        if not self.live or started < self._floor:
            return False
        return user is None or (self._changed.get(user) or 0) <= started

    async def history(self, user_id: str, depth: int) -> RecentHistory:
        """At least the user's last `depth` interactions and every item they touched; NotFound for an unknown
        user."""
        cached = self.histories.get(user_id)
        if cached is not None and cached[0] >= depth:
            return cached[1]
        started = self.generation
        async with self.db.acquire() as conn:
            found = await recent_history(conn, user_id, depth)
        if self._keep(started, found.user):
            self.histories.put(user_id, (depth, found))
        return found

    async def item_titles(self, item_ids: list[str]) -> dict[str, str]:
        names = {i: self.titles.get(i) for i in item_ids}
        missing = [i for i, name in names.items() if name is None]
        if missing:
            started = self.generation
            async with self.db.acquire() as conn:
                found = await titles(conn, missing)
            keep = self._keep(started)
            for i in missing:
                names[i] = found.get(i)
                if keep and i in found:
                    self.titles.put(i, found[i])
        return {i: name for i, name in names.items() if name is not None}
