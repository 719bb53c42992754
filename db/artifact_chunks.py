"""Artifacts kept in the database itself, as fixed-size chunks of their tar: every node already reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import asyncpg

# A row per chunk keeps each query's memory bounded whatever the artifact's size.
CHUNK_BYTES = 8 * 1024 * 1024


async def stored(conn: asyncpg.Connection, sha256: str) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM artifact_chunks WHERE sha256 = $1)", sha256)


async def put(conn: asyncpg.Connection, sha256: str, chunks: Iterable[bytes]) -> None:
    """Write an artifact's chunks. Call it inside the transaction that registers the version, so that an
    artifact and the row naming it appear together or not at all."""
    if await stored(conn, sha256):
        return
    for seq, data in enumerate(chunks):
        await conn.execute("INSERT INTO artifact_chunks (sha256, seq, data) VALUES ($1, $2, $3)", sha256, seq, data)


async def read(conn: asyncpg.Connection, sha256: str) -> AsyncIterator[bytes]:
    """An artifact's chunks in order, one query each."""
    count = await conn.fetchval("SELECT count(*) FROM artifact_chunks WHERE sha256 = $1", sha256)
    for seq in range(count):
        yield await conn.fetchval("SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2", sha256, seq)


async def delete_unreferenced(conn: asyncpg.Connection) -> list[str]:
    """Drop the chunks of artifacts no model version names; returns their hashes."""
    rows = await conn.fetch(
        """DELETE FROM artifact_chunks c WHERE NOT EXISTS (
               SELECT 1 FROM model_versions v WHERE v.artifact_sha256 = c.sha256 AND v.artifact_url = 'postgres')
           RETURNING sha256""")
    return sorted({r["sha256"] for r in rows})
