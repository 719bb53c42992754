"""API keys: created with a scope (`admin` or `inference`), kept as SHA-256 digests, revoked by id.

A key is 32 random bytes, so a plain digest is enough to keep it from being read back out of the database (a slow
password hash would only slow every request down). Its first characters are kept as `prefix`, for people to tell
their keys apart in a listing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

Scope = Literal["admin", "inference"]
KEY_PREFIX = "tdm_"
SHOWN_CHARS = 8


class ApiKey(BaseModel):
    id: int
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_key(conn: asyncpg.Connection, scope: Scope, name: str = "") -> tuple[ApiKey, str]:
    """A new key and its record; the key is not stored and cannot be shown again."""
    key = new_key()
    row = await conn.fetchrow(
        """INSERT INTO api_keys (name, scope, prefix, digest) VALUES ($1, $2, $3, $4)
           RETURNING id, name, scope, prefix, created_at, revoked_at""",
        name, scope, key[: len(KEY_PREFIX) + SHOWN_CHARS], digest(key))
    return ApiKey(**row), key


async def list_keys(conn: asyncpg.Connection, include_revoked: bool = False) -> list[ApiKey]:
    rows = await conn.fetch(
        """SELECT id, name, scope, prefix, created_at, revoked_at FROM api_keys
           WHERE $1 OR revoked_at IS NULL ORDER BY id""", include_revoked)
    return [ApiKey(**r) for r in rows]


async def revoke_key(conn: asyncpg.Connection, key_id: int) -> ApiKey | None:
    """Revoke a key (once; revoking it again changes nothing). None when there is no such key."""
    row = await conn.fetchrow(
        """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
           RETURNING id, name, scope, prefix, created_at, revoked_at""", key_id)
    return ApiKey(**row) if row else None


async def active_digests(conn: asyncpg.Connection) -> dict[bytes, tuple[int, Scope]]:
    """Digest -> (key id, scope) of every key not revoked."""
    rows = await conn.fetch("SELECT digest, id, scope FROM api_keys WHERE revoked_at IS NULL")
    return {bytes(r["digest"]): (r["id"], r["scope"]) for r in rows}


async def key_of(conn: asyncpg.Connection, key_digest: bytes) -> tuple[int, Scope] | None:
    """(key id, scope) of the key with this digest, if it is not revoked."""
    row = await conn.fetchrow("SELECT id, scope FROM api_keys WHERE digest = $1 AND revoked_at IS NULL", key_digest)
    return (row["id"], row["scope"]) if row else None
