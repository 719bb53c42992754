"""One asyncpg pool per process, opened lazily, migrated on first open and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from db.errors import CONNECTION_LOST, DatabaseUnavailable
from db.migrate import migrate

log = logging.getLogger("tandem.db")

CONNECT_TIMEOUT_S = 5.0


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, command_timeout=30, timeout=CONNECT_TIMEOUT_S
    )


class Database:
    """The process's pool. A database that is down at start-up is retried on the next request."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, run_migrations: bool = True):
        self.url, self.min_size, self.max_size = url, min_size, max_size
        self.run_migrations = run_migrations
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                try:
                    pool = await create_pool(self.url, min_size=self.min_size, max_size=self.max_size)
                    if self.run_migrations:
                        async with pool.acquire() as conn:
                            await migrate(conn)
                except CONNECTION_LOST as exc:
                    raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
                self._pool = pool
        return self._pool

    async def ping(self, timeout: float = 2.0) -> None:
        async with self.acquire(timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)

    def acquire(self, timeout: float = CONNECT_TIMEOUT_S):
        """`async with db.acquire() as conn:` — a pooled connection, or DatabaseUnavailable."""
        return _Acquire(self, timeout)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class _Acquire:
    def __init__(self, db: Database, timeout: float):
        self.db, self.timeout = db, timeout
        self._ctx = None

    async def __aenter__(self) -> asyncpg.Connection:
        pool = await self.db.pool()
        self._ctx = pool.acquire(timeout=self.timeout)
        try:
            self._conn = await self._ctx.__aenter__()
        except CONNECTION_LOST as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return self._conn

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if isinstance(exc, asyncpg.InternalClientError):
            self._conn.terminate()  # its protocol state is broken; the pool opens a fresh one
        try:
            await self._ctx.__aexit__(exc_type, exc, tb)
        except CONNECTION_LOST:
            pass  # releasing a connection to a server that went away; the pool replaces it
        if isinstance(exc, (OSError, asyncpg.InternalClientError)):
            # The server vanished mid-transaction: nothing was committed.
            raise DatabaseUnavailable(f"lost the connection to PostgreSQL: {exc}") from exc
