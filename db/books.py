"""Queries for the book catalogue."""

from __future__ import annotations

import asyncpg

from db.records import Book, BookIn, UpsertResult
from db.upsert import Column, fetch_one, fetch_page, text_array, upsert

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
    return Book(**await fetch_one(conn, "books", _BOOK_FIELDS, external_id, "book"))


async def list_books(conn: asyncpg.Connection, *, after: str | None, limit: int) -> list[Book]:
    return [Book(**r) for r in await fetch_page(conn, "books", _BOOK_FIELDS, after=after, limit=limit)]


CHANNEL = "books"


async def catalogue_stamps(conn: asyncpg.Connection) -> dict[int, object]:
    """Internal id → last update time of every catalogue book: what a searcher compares to see changes."""
    return {r["id"]: r["updated_at"] for r in await conn.fetch("SELECT id, updated_at FROM books")}


async def catalogue_books(conn: asyncpg.Connection, ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, external_id, title, author, categories, introduction, updated_at FROM books
           WHERE id = ANY($1::bigint[]) ORDER BY id""",
        ids,
    )
