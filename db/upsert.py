"""Tables keyed on external ids: bulk upsert, lookup and pages.

Bulk upsert: one statement per batch, so a batch is all or nothing.

Rows travel as one array per column through `unnest`, which costs one round trip however large
the batch. A row whose values equal the stored ones is left alone (not even `updated_at`
changes), so re-sending the same record changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from db.errors import NotFound
from db.records import UpsertResult


@dataclass(frozen=True)
class Column:
    name: str
    array_type: str = "text[]"
    # How the unnested value becomes the column value; jsonb and text[] columns arrive as JSON text.
    expr: str | None = None


def jsonb(name: str) -> Column:
    return Column(name, "text[]", f"{name}::jsonb")


def text_array(name: str) -> Column:
    # unnest() would flatten a 2-D array, so per-row lists travel as JSON arrays.
    return Column(name, "text[]", f"ARRAY(SELECT jsonb_array_elements_text({name}::jsonb))")


def encode(value: Any, column: Column) -> Any:
    return json.dumps(value, ensure_ascii=False) if column.expr and "jsonb" in column.expr else value


def dedupe_last(rows: Sequence[dict[str, Any]], key: str = "external_id") -> list[dict[str, Any]]:
    """One row per key, the last one sent winning: one statement cannot update a row twice."""
    return list({row[key]: row for row in rows}.values())


async def upsert(
    conn: asyncpg.Connection, table: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]]
) -> UpsertResult:
    unique = dedupe_last(rows)
    names = [c.name for c in columns]
    params = [[encode(row[c.name], c) for row in unique] for c in columns]
    unnest = ", ".join(f"${i}::{c.array_type}" for i, c in enumerate(columns, 1))
    select = ", ".join(c.expr or c.name for c in columns)
    updatable = [n for n in names if n != "external_id"]
    sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in updatable)
    mine = ", ".join(f"{table}.{n}" for n in updatable)
    theirs = ", ".join(f"EXCLUDED.{n}" for n in updatable)
    sql = f"""
        WITH upserted AS (
            INSERT INTO {table} ({", ".join(names)})
            SELECT {select} FROM unnest({unnest}) AS t({", ".join(names)})
            ON CONFLICT (external_id) DO UPDATE SET {sets}, updated_at = now()
            WHERE ({mine}) IS DISTINCT FROM ({theirs})
            RETURNING (xmax = 0) AS created
        )
        SELECT count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated
        FROM upserted"""
    row = await conn.fetchrow(sql, *params)
    created, updated = row["created"], row["updated"]
    return UpsertResult(received=len(rows), created=created, updated=updated, unchanged=len(unique) - created - updated)


async def missing_ids(conn: asyncpg.Connection, table: str, ids: Sequence[str]) -> list[str]:
    """The ids among `ids` that `table` does not hold, in first-seen order."""
    rows = await conn.fetch(
        f"""SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n)
            WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE external_id = t.x)
            GROUP BY x ORDER BY min(n)""",
        list(ids),
    )
    return [r["x"] for r in rows]


async def fetch_one(conn: asyncpg.Connection, table: str, fields: str, external_id: str, kind: str) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {fields} FROM {table} WHERE external_id = $1", external_id)
    if row is None:
        raise NotFound(f"unknown {kind} id: {external_id!r}")
    return row


async def fetch_page(
    conn: asyncpg.Connection, table: str, fields: str, *, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """Keyset pagination in external-id order: the page after `after`."""
    return await conn.fetch(
        f"SELECT {fields} FROM {table} WHERE $1::text IS NULL OR external_id > $1 ORDER BY external_id LIMIT $2",
        after,
        limit,
    )
