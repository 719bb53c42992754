"""Idempotency keys: a request sent again with the same key gets the first answer and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from db.errors import IdempotencyConflict


async def claim(conn: asyncpg.Connection, key: str, endpoint: str, request_sha256: str) -> tuple[int, Any] | None:
    """Inside the write's transaction: None if this request now owns `key`, else the stored (status, body).

    A concurrent request with the same key blocks on the key's unique index until the first commits
    (then replays its answer) or rolls back (then owns the key itself).
    """
    owned = await conn.fetchval(
        """INSERT INTO idempotency_keys (key, endpoint, request_sha256, status_code, response)
           VALUES ($1, $2, $3, 0, 'null') ON CONFLICT (key) DO NOTHING RETURNING true""",
        key,
        endpoint,
        request_sha256,
    )
    if owned:
        return None
    row = await conn.fetchrow(
        "SELECT endpoint, request_sha256, status_code, response FROM idempotency_keys WHERE key = $1", key
    )
    if (row["endpoint"], row["request_sha256"]) != (endpoint, request_sha256):
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was already used for a different request to {row['endpoint']}; "
            "use a new key for a new request"
        )
    return row["status_code"], json.loads(row["response"])


async def record(conn: asyncpg.Connection, key: str, status_code: int, body: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $2, response = $3::jsonb WHERE key = $1",
        key,
        status_code,
        json.dumps(body, ensure_ascii=False),
    )
