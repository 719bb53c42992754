"""Queries for items and interactions: the recommender's training data."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.errors import MissingReferences, NotFound
from db.records import InsertResult, Interaction, InteractionIn, Item, ItemIn, UpsertResult
from db.upsert import Column, fetch_one, fetch_page, jsonb, missing_ids, upsert

# NOTIFY channels (db/migrations/0005): the users whose interactions changed ('*': anyone), and any item change.
INTERACTIONS_CHANNEL, ITEMS_CHANNEL = "interactions", "items"
ITEM_COLUMNS = [Column("external_id"), Column("title"), Column("style"), jsonb("attributes")]
_ITEM_FIELDS = "external_id, title, style, attributes, created_at, updated_at"


def _item(row: asyncpg.Record) -> Item:
    return Item(**{**row, "attributes": json.loads(row["attributes"])})


async def upsert_items(conn: asyncpg.Connection, items: list[ItemIn]) -> UpsertResult:
    return await upsert(conn, "items", ITEM_COLUMNS, [i.model_dump() for i in items])


async def get_item(conn: asyncpg.Connection, external_id: str) -> Item:
    return _item(await fetch_one(conn, "items", _ITEM_FIELDS, external_id, "item"))


async def list_items(conn: asyncpg.Connection, *, after: str | None, limit: int) -> list[Item]:
    return [_item(r) for r in await fetch_page(conn, "items", _ITEM_FIELDS, after=after, limit=limit)]


async def insert_interactions(conn: asyncpg.Connection, batch: list[InteractionIn]) -> InsertResult:
    """Insert a batch in one statement; call inside a transaction so that checks and writes agree.

    Unknown users or items reject the whole batch, naming them. Events already stored (same user,
    item and time) are skipped, so re-sending a batch writes nothing twice.
    """
    if missing := await missing_ids(conn, "users", [i.user_id for i in batch]):
        raise MissingReferences("user", missing)
    if missing := await missing_ids(conn, "items", [i.item_id for i in batch]):
        raise MissingReferences("item", missing)
    inserted = await conn.fetchval(
        """WITH ins AS (
               INSERT INTO interactions (user_id, item_id, rating, comment, occurred_at)
               SELECT u.id, i.id, t.rating, t.comment, t.ts
               FROM unnest($1::text[], $2::text[], $3::real[], $4::text[], $5::timestamptz[])
                    AS t(u, i, rating, comment, ts)
               JOIN users u ON u.external_id = t.u
               JOIN items i ON i.external_id = t.i
               ON CONFLICT (user_id, item_id, occurred_at) DO NOTHING
               RETURNING 1)
           SELECT count(*) FROM ins""",
        [i.user_id for i in batch],
        [i.item_id for i in batch],
        [i.rating for i in batch],
        [i.comment for i in batch],
        [i.timestamp for i in batch],
    )
    return InsertResult(received=len(batch), inserted=inserted, duplicates=len(batch) - inserted)


async def user_history(
    conn: asyncpg.Connection, user_id: str, *, since: datetime | None = None, limit: int = 1000
) -> list[Interaction]:
    """A user's interactions in time order (oldest first), the order sequence models read them in."""
    user = await conn.fetchval("SELECT id FROM users WHERE external_id = $1", user_id)
    if user is None:
        raise NotFound(f"unknown user id: {user_id!r}")
    rows = await conn.fetch(
        """SELECT $1::text AS user_id, i.external_id AS item_id, x.rating, x.comment,
                  x.occurred_at AS timestamp, x.created_at
           FROM interactions x JOIN items i ON i.id = x.item_id
           WHERE x.user_id = $2 AND ($3::timestamptz IS NULL OR x.occurred_at >= $3)
           ORDER BY x.occurred_at, x.id LIMIT $4""",
        user_id,
        user,
        since,
        limit,
    )
    return [Interaction(**r) for r in rows]


async def copy_interactions(
    conn: asyncpg.Connection, rows: Iterable[tuple[str, str, float | None, str | None, datetime]]
) -> int:
    """Bulk load (importers): COPY into a temporary table, then one INSERT that resolves external ids.

    Rows whose user or item is unknown are dropped; the caller upserts users and items first.
    Returns the number of new rows.
    """
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMPORARY TABLE staged_interactions
                   (user_ext text, item_ext text, rating real, comment text, occurred_at timestamptz)
               ON COMMIT DROP"""
        )
        await conn.copy_records_to_table("staged_interactions", records=rows)
        result = await conn.execute(
            """INSERT INTO interactions (user_id, item_id, rating, comment, occurred_at)
               SELECT u.id, i.id, s.rating, s.comment, s.occurred_at
               FROM staged_interactions s
               JOIN users u ON u.external_id = s.user_ext
               JOIN items i ON i.external_id = s.item_ext
               ON CONFLICT (user_id, item_id, occurred_at) DO NOTHING"""
        )
    return int(result.rsplit(" ", 1)[1])


async def all_events(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every interaction as (user external id, item external id, time): what the sequence models train on."""
    return await conn.fetch(
        """SELECT u.external_id AS user_id, i.external_id AS item_id, x.occurred_at AS timestamp
           FROM interactions x JOIN users u ON u.id = x.user_id JOIN items i ON i.id = x.item_id"""
    )


async def titles(conn: asyncpg.Connection, item_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT external_id, title FROM items WHERE external_id = ANY($1::text[])", item_ids)
    return {r["external_id"]: r["title"] for r in rows}


@dataclass(frozen=True)
class RecentHistory:
    """What ranking needs of a user: the last interactions (oldest first) and every item they ever touched."""

    user: int  # the internal id, which change notifications name
    item_ids: list[str]
    comments: list[str | None]
    seen: frozenset[str]


async def recent_history(conn: asyncpg.Connection, user_id: str, depth: int) -> RecentHistory:
    """The last `depth` interactions of a user and the set of items they interacted with, read through the
    (user, time) index: no more rows than that, however long the history."""
    user = await conn.fetchval("SELECT id FROM users WHERE external_id = $1", user_id)
    if user is None:
        raise NotFound(f"unknown user id: {user_id!r}")
    recent = await conn.fetch(
        """SELECT i.external_id AS item_id, x.comment
           FROM interactions x JOIN items i ON i.id = x.item_id
           WHERE x.user_id = $1 ORDER BY x.occurred_at DESC, x.id DESC LIMIT $2""",
        user, depth,
    )
    seen = await conn.fetchval(
        """SELECT coalesce(array_agg(i.external_id), '{}') FROM items i
           WHERE i.id IN (SELECT item_id FROM interactions WHERE user_id = $1)""",
        user,
    )
    recent = recent[::-1]
    return RecentHistory(user, [r["item_id"] for r in recent], [r["comment"] for r in recent], frozenset(seen))
