"""One asyncpg pool per process, opened at start-up and closed at shutdown."""

from __future__ import annotations

import asyncpg


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30)


async def ping(pool: asyncpg.Pool, timeout: float = 2.0) -> None:
    """Raise if the database cannot answer a trivial query within `timeout` seconds."""
    async with pool.acquire(timeout=timeout) as conn:
        await conn.fetchval("SELECT 1", timeout=timeout)
