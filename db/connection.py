"""One database connection for a command or a training run (serving uses the pool in `db.pool`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from db.migrate import migrate as migrate_schema


@asynccontextmanager
async def connect(url: str, migrate: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `url`, its schema migrated first unless `migrate` is False, closed on the way out."""
    conn = await asyncpg.connect(url)
    try:
        if migrate:
            await migrate_schema(conn)
        yield conn
    finally:
        await conn.close()
