"""Migrations apply from empty, never twice, and safely from two processes at once."""

import asyncio

import asyncpg
import pytest

from db.migrate import discover, migrate


async def _connect_and_migrate(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def test_from_empty_then_rerun_applies_nothing(fresh_db: str) -> None:
    every = [m.version for m in discover()]
    assert asyncio.run(_connect_and_migrate(fresh_db)) == every
    assert asyncio.run(_connect_and_migrate(fresh_db)) == []

    async def tables() -> set[str]:
        conn = await asyncpg.connect(fresh_db)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    assert {
        "users",
        "items",
        "interactions",
        "survey_responses",
        "books",
        "reading_history",
        "reading_preferences",
        "documents",
        "passages",
        "qa_pairs",
        "keyword_pairs",
        "model_versions",
        "training_runs",
        "schema_migrations",
        "idempotency_keys",
    } <= asyncio.run(tables())


def test_concurrent_migrators_apply_once(fresh_db: str) -> None:
    async def race() -> list[list[int]]:
        return await asyncio.gather(*(_connect_and_migrate(fresh_db) for _ in range(4)))

    results = asyncio.run(race())
    assert sorted(map(len, results)) == [0, 0, 0, len(discover())]


@pytest.mark.parametrize(
    "sql,error",
    [
        ("INSERT INTO users (external_id) VALUES ('')", asyncpg.CheckViolationError),
        ("INSERT INTO items (external_id, title) VALUES ('i', NULL)", asyncpg.NotNullViolationError),
        (
            "INSERT INTO interactions (user_id, item_id, occurred_at) VALUES (999999, 999999, now())",
            asyncpg.ForeignKeyViolationError,
        ),
        ("INSERT INTO keyword_pairs (query, keywords) VALUES ('q', '{}')", asyncpg.CheckViolationError),
        (
            "INSERT INTO model_versions (pipeline, version, artifact_path) VALUES ('nope', '1', '/x')",
            asyncpg.CheckViolationError,
        ),
        ("INSERT INTO training_runs (pipeline, status) VALUES ('lrurec', 'failed')", asyncpg.CheckViolationError),
    ],
)
def test_constraints_guard_the_data(fresh_db: str, sql: str, error: type[Exception]) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            await migrate(conn)
            with pytest.raises(error):
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def test_one_active_model_version_per_pipeline(fresh_db: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            await migrate(conn)
            insert = (
                "INSERT INTO model_versions (pipeline, version, artifact_path, status) VALUES ('lrurec', $1, '/a', $2)"
            )
            await conn.execute(insert, "v1", "active")
            await conn.execute(insert, "v2", "registered")
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("UPDATE model_versions SET status = 'active' WHERE version = 'v2'")
        finally:
            await conn.close()

    asyncio.run(go())
