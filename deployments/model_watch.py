"""Serve the active model version of a pipeline and switch to a new one without dropping requests.

`LISTEN model_versions` wakes the watcher at once when a version is activated; a periodic check covers
notifications lost while the listening connection was down. A new version is loaded beside the old one
(in a thread, so requests keep being answered) and then swapped in with one assignment: a request
holds the reference it started with, so none sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import asyncpg

from db import registry
from db.pool import Database

log = logging.getLogger("tandem.models")
T = TypeVar("T")


class ActiveModel(Generic[T]):
    def __init__(self, db: Database, pipeline: str, load: Callable[[registry.ModelVersion], T], poll_s: float):
        self.db, self.pipeline, self.load, self.poll_s = db, pipeline, load, poll_s
        self.current: T | None = None
        self.version: registry.ModelVersion | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # a database or artifact problem at start-up degrades this endpoint only
            log.warning("no model loaded at start-up", extra={"pipeline": self.pipeline, "error": str(exc)})
        self._task = asyncio.create_task(self._watch())

    async def refresh(self) -> bool:
        async with self.db.acquire() as conn:
            active = await registry.active_version(conn, self.pipeline)
        if active is None or (self.version is not None and active.id == self.version.id):
            return False
        loaded = await asyncio.to_thread(self.load, active)
        self.current, self.version = loaded, active
        log.info("model version active", extra={"pipeline": self.pipeline, "version": active.version})
        return True

    async def _watch(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.db.url, timeout=5)
                await conn.add_listener(registry.CHANNEL, self._notified)
                while not conn.is_closed():
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                    except asyncio.TimeoutError:
                        pass
                    self._wake.clear()
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("model watch failed; retrying", extra={"pipeline": self.pipeline, "error": str(exc)})
                await asyncio.sleep(self.poll_s)
            finally:
                if conn is not None:
                    conn.terminate()

    def _notified(self, conn, pid, channel, payload: str) -> None:
        if payload == self.pipeline:
            self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
