"""Queries for the book catalogue."""

from __future__ import annotations

import asyncpg

from db.errors import NotFound
from db.records import Book, BookIn, UpsertResult
from db.upsert import Column, text_array, upsert

BOOK_COLUMNS = [
    Column("external_id"),
    Column("title"),
    Column("author"),
    Column("introduction"),
    text_array("categories"),
    Column("rating", "real[]"),
    Column("review_count", "integer[]"),
    Column("pages", "integer[]"),
    Column("price", "integer[]"),
]
_BOOK_FIELDS = (
    "external_id, title, author, introduction, categories, rating, review_count, pages, price, created_at, updated_at"
)


async def upsert_books(conn: asyncpg.Connection, books: list[BookIn]) -> UpsertResult:
    return await upsert(conn, "books", BOOK_COLUMNS, [b.model_dump() for b in books])


async def get_book(conn: asyncpg.Connection, external_id: str) -> Book:
    row = await conn.fetchrow(f"SELECT {_BOOK_FIELDS} FROM books WHERE external_id = $1", external_id)
    if row is None:
        raise NotFound(f"unknown book id: {external_id!r}")
    return Book(**row)


async def list_books(conn: asyncpg.Connection, *, after: str | None, limit: int) -> list[Book]:
    rows = await conn.fetch(
        f"SELECT {_BOOK_FIELDS} FROM books WHERE $1::text IS NULL OR external_id > $1 ORDER BY external_id LIMIT $2",
        after,
        limit,
    )
    return [Book(**r) for r in rows]
