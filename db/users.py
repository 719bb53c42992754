"""Queries for users and their survey responses."""

from __future__ import annotations

import json

import asyncpg

from db.errors import MissingReferences
from db.records import Survey, SurveyIn, UpsertResult, User, UserIn
from db.upsert import Column, fetch_one, fetch_page, jsonb, missing_ids, upsert

USER_COLUMNS = [
    Column("external_id"),
    Column("sex"),
    Column("job"),
    Column("married", "boolean[]"),
    Column("style"),
    jsonb("attributes"),
]
_USER_FIELDS = "external_id, sex, job, married, style, attributes, created_at, updated_at"


def _user(row: asyncpg.Record) -> User:
    return User(**{**row, "attributes": json.loads(row["attributes"])})


async def upsert_users(conn: asyncpg.Connection, users: list[UserIn]) -> UpsertResult:
    return await upsert(conn, "users", USER_COLUMNS, [u.model_dump() for u in users])


async def get_user(conn: asyncpg.Connection, external_id: str) -> User:
    return _user(await fetch_one(conn, "users", _USER_FIELDS, external_id, "user"))


async def list_users(conn: asyncpg.Connection, *, after: str | None, limit: int) -> list[User]:
    return [_user(r) for r in await fetch_page(conn, "users", _USER_FIELDS, after=after, limit=limit)]


async def add_surveys(conn: asyncpg.Connection, surveys: list[SurveyIn]) -> int:
    if missing := await missing_ids(conn, "users", [s.user_id for s in surveys]):
        raise MissingReferences("user", missing)
    await conn.executemany(
        """INSERT INTO survey_responses (user_id, kind, answers)
           SELECT id, $2, $3::jsonb FROM users WHERE external_id = $1""",
        [(s.user_id, s.kind, json.dumps(s.answers, ensure_ascii=False)) for s in surveys],
    )
    return len(surveys)


async def list_surveys(conn: asyncpg.Connection, user_id: str, kind: str | None, limit: int) -> list[Survey]:
    await get_user(conn, user_id)
    rows = await conn.fetch(
        """SELECT s.id, u.external_id AS user_id, s.kind, s.answers, s.created_at
           FROM survey_responses s JOIN users u ON u.id = s.user_id
           WHERE u.external_id = $1 AND ($2::text IS NULL OR s.kind = $2)
           ORDER BY s.created_at DESC, s.id DESC LIMIT $3""",
        user_id,
        kind,
        limit,
    )
    return [Survey(**{**r, "answers": json.loads(r["answers"])}) for r in rows]
