"""Serve the active model versions of pipelines and switch to new ones without dropping requests.

`LISTEN model_versions` wakes the watcher at once when a version is activated; a periodic check covers
notifications lost while the listening connection was down. A new version is loaded beside the old one
(in a thread, so requests keep being answered) and then swapped in with one assignment: a request
holds the reference it started with, so none sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg

from db import registry
from db.pool import Database
from deployments.telemetry import served_versions
from tandem.artifacts import ArtifactCache, local_version

log = logging.getLogger("tandem.models")
T = TypeVar("T")


class VersionWatch:
    """Calls `refresh()` at start, on every NOTIFY for one of `pipelines` (and any NOTIFY on `channels`), and
    every `poll_s` seconds. A version's artifact is loaded from this node's `cache`, fetched from the store
    every node reaches when the node has no intact copy."""

    def __init__(self, db: Database, pipelines: list[str], poll_s: float, cache: ArtifactCache,
                 channels: tuple[str, ...] = ()):
        self.db, self.pipelines, self.poll_s, self.channels, self.cache = db, pipelines, poll_s, channels, cache
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def refresh(self) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # a database or artifact problem at start-up degrades these endpoints only
            log.warning("no model loaded at start-up", extra={"pipelines": self.pipelines, "error": str(exc)})
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.db.url, timeout=5)
                await conn.add_listener(registry.CHANNEL, self._notified)
                for channel in self.channels:
                    await conn.add_listener(channel, lambda *_: self._wake.set())
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
                log.warning("model watch failed; retrying", extra={"pipelines": self.pipelines, "error": str(exc)})
                await asyncio.sleep(self.poll_s)
            finally:
                if conn is not None:
                    conn.terminate()

    async def local(self, version: registry.ModelVersion) -> registry.ModelVersion:
        """`version` with its artifact's folder on this node."""
        async with self.db.acquire() as conn:
            return await local_version(version, self.cache, conn)

    def _notified(self, conn, pid, channel, payload: str) -> None:
        if payload in self.pipelines:
            self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ActiveModel(VersionWatch, Generic[T]):
    """One pipeline's active version, loaded by `load` in a thread and swapped in with one assignment. A version
    that fails to load is logged, counted and tried again at the next check; the one loaded before keeps serving."""

    def __init__(self, db: Database, pipeline: str, load: Callable[[registry.ModelVersion], T], poll_s: float,
                 cache: ArtifactCache):
        super().__init__(db, [pipeline], poll_s, cache)
        self.pipeline, self.load = pipeline, load
        self.current: T | None = None
        self.version: registry.ModelVersion | None = None

    async def refresh(self) -> bool:
        async with self.db.acquire() as conn:
            active = await registry.active_version(conn, self.pipeline)
        if active is None or (self.version is not None and active.id == self.version.id):
            return False
        try:
            loaded = await asyncio.to_thread(self.load, await self.local(active))
        except Exception as exc:  # a broken artifact: the version loaded before keeps serving; tried again later
            served_versions().failed(self.pipeline, active.version)
            log.warning("model version failed to load", extra={"pipeline": self.pipeline, "version": active.version,
                                                                "error": str(exc)})
            return False
        self.current, self.version = loaded, active
        served_versions().serving(self.pipeline, active.version)
        log.info("model version active", extra={"pipeline": self.pipeline, "version": active.version})
        return True


class ActiveAdapters(VersionWatch):
    """The active versions of several adapter pipelines, each handed to `load` (an async call into the
    running engine) when it changes. A version that fails to load is logged and retried at the next check;
    the adapter it would replace keeps serving."""

    def __init__(self, db: Database, pipelines: list[str], load: Callable[[registry.ModelVersion], Awaitable[None]],
                 poll_s: float, cache: ArtifactCache):
        super().__init__(db, pipelines, poll_s, cache)
        self.load = load
        self.versions: dict[str, registry.ModelVersion] = {}

    async def refresh(self) -> bool:
        async with self.db.acquire() as conn:
            active = await registry.active_versions(conn, self.pipelines)
        changed = False
        for version in active:
            if (current := self.versions.get(version.pipeline)) is not None and current.id == version.id:
                continue
            try:
                await self.load(await self.local(version))
            except Exception as exc:
                served_versions().failed(version.pipeline, version.version)
                log.warning("adapter failed to load", extra={"pipeline": version.pipeline,
                                                             "version": version.version, "error": str(exc)})
                continue
            self.versions[version.pipeline] = version
            served_versions().serving(version.pipeline, version.version)
            changed = True
            log.info("adapter version active", extra={"pipeline": version.pipeline, "version": version.version})
        return changed


class ServesActiveModel:
    """For deployments that serve one pipeline's active version as `self.active`."""

    active: ActiveModel

    def active_version(self) -> str | None:
        return self.active.version.version if self.active.version else None

    def __del__(self) -> None:
        active = getattr(self, "active", None)
        if active is not None:
            active.stop()
