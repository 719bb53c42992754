"""Queries for (query, keywords) pairs: the keyword model's training data."""

from __future__ import annotations

import asyncpg


async def upsert_keyword_pairs(conn: asyncpg.Connection, pairs: list[tuple[str, list[str]]], source: str) -> int:
    """Store pairs (a query already stored gets these keywords); pairs without keywords are skipped.
    Returns how many were stored."""
    rows = [(q, k, source) for q, k in pairs if k]
    await conn.executemany(
        """INSERT INTO keyword_pairs (query, keywords, source) VALUES ($1, $2, $3)
           ON CONFLICT (query) DO UPDATE SET keywords = EXCLUDED.keywords, source = EXCLUDED.source
           WHERE keyword_pairs.keywords IS DISTINCT FROM EXCLUDED.keywords""",
        rows,
    )
    return len(rows)


async def keyword_pairs(conn: asyncpg.Connection) -> list[tuple[str, list[str], str]]:
    """(query, keywords, source) in insertion order."""
    return [(r["query"], list(r["keywords"]), r["source"]) for r in
            await conn.fetch("SELECT query, keywords, source FROM keyword_pairs ORDER BY id")]
