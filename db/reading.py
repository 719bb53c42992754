"""Queries for a user's reading life: the books read (catalogue or not) and reading preferences."""

from __future__ import annotations

import json

import asyncpg

from db.errors import MissingReferences, NotFound
from db.records import ReadingEntry, ReadingEntryIn, ReadingPreferences
from db.upsert import missing_ids


async def _user_id(conn: asyncpg.Connection, external_id: str) -> int:
    user_id = await conn.fetchval("SELECT id FROM users WHERE external_id = $1", external_id)
    if user_id is None:
        raise NotFound(f"unknown user id: {external_id!r}")
    return user_id


async def add_reading(conn: asyncpg.Connection, user: str, entries: list[ReadingEntryIn]) -> int:
    """Upsert entries by title. An entry without `book_id` is linked to the catalogue book of exactly that
    title when there is one, so that it is not recommended again. Returns how many entries were written."""
    user_id = await _user_id(conn, user)
    if missing := await missing_ids(conn, "books", [e.book_id for e in entries if e.book_id]):
        raise MissingReferences("book", missing)
    rows = [(user_id, e.book_id, e.title, e.author, e.genres, e.rating, e.review, e.read_at) for e in entries]
    await conn.executemany(
        """INSERT INTO reading_history (user_id, book_id, title, author, genres, rating, review, read_at)
           SELECT $1, coalesce((SELECT id FROM books WHERE external_id = $2),
                               (SELECT min(id) FROM books WHERE $2::text IS NULL AND title = $3
                                HAVING count(*) = 1)),
                  $3, $4, $5, $6, $7, $8
           ON CONFLICT (user_id, title) DO UPDATE SET
               book_id = EXCLUDED.book_id, author = EXCLUDED.author, genres = EXCLUDED.genres,
               rating = EXCLUDED.rating, review = EXCLUDED.review, read_at = EXCLUDED.read_at, updated_at = now()""",
        rows,
    )
    return len(rows)


async def reading_history(conn: asyncpg.Connection, user: str) -> list[ReadingEntry]:
    """Most recent first; entries without a date last."""
    user_id = await _user_id(conn, user)
    rows = await conn.fetch(
        """SELECT b.external_id AS book_id, h.book_id IS NOT NULL AS in_catalogue, h.title, h.author, h.genres,
                  h.rating, h.review, h.read_at
           FROM reading_history h LEFT JOIN books b ON b.id = h.book_id
           WHERE h.user_id = $1 ORDER BY h.read_at DESC NULLS LAST, h.id""",
        user_id,
    )
    return [ReadingEntry(**r) for r in rows]


async def read_book_ids(conn: asyncpg.Connection, user: str) -> list[int]:
    """Internal ids of the catalogue books the user has read."""
    user_id = await _user_id(conn, user)
    return [r["book_id"] for r in await conn.fetch(
        "SELECT book_id FROM reading_history WHERE user_id = $1 AND book_id IS NOT NULL", user_id)]


async def set_preferences(conn: asyncpg.Connection, user: str, prefs: ReadingPreferences) -> ReadingPreferences:
    user_id = await _user_id(conn, user)
    await conn.execute(
        """INSERT INTO reading_preferences (user_id, genres, reading_style, keywords, avoid_topics)
           VALUES ($1, $2::jsonb, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET genres = EXCLUDED.genres, reading_style = EXCLUDED.reading_style,
               keywords = EXCLUDED.keywords, avoid_topics = EXCLUDED.avoid_topics, updated_at = now()""",
        user_id, json.dumps(prefs.genres, ensure_ascii=False), prefs.reading_style, prefs.keywords,
        prefs.avoid_topics,
    )
    return prefs


async def preferences(conn: asyncpg.Connection, user: str) -> ReadingPreferences:
    """The user's preferences; empty ones when none were set."""
    user_id = await _user_id(conn, user)
    row = await conn.fetchrow(
        "SELECT genres, reading_style, keywords, avoid_topics FROM reading_preferences WHERE user_id = $1", user_id)
    if row is None:
        return ReadingPreferences()
    return ReadingPreferences(**{**row, "genres": json.loads(row["genres"])})
