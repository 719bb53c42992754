"""The embedded PostgreSQL is a real server: asyncpg talks to it and its data survives a restart."""

import asyncio
from pathlib import Path

import asyncpg
import psutil

from db.pool import Database
from db.server import embedded_server


def test_asyncpg_queries_the_session_server(pg_url: str) -> None:
    async def go():
        db = Database(pg_url, min_size=1, max_size=2, run_migrations=False)
        try:
            await db.ping()
            async with db.acquire() as conn:
                version = await conn.fetchval("SHOW server_version_num")
                total = await conn.fetchval("SELECT sum(x) FROM generate_series(1, 100) AS x")
            return int(version), total
        finally:
            await db.close()

    version, total = asyncio.run(go())
    assert version >= 150000
    assert total == 5050


def _postgres_running_on(pgdata: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            return True
    return False


def test_embedded_data_survives_restart_and_server_stops(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"

    async def write(url: str) -> None:
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO kept VALUES (1, '이사화물 통관')")
        await conn.close()

    async def read(url: str) -> str:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT note FROM kept WHERE id = 1")
        finally:
            await conn.close()

    with embedded_server(pgdata) as url:
        asyncio.run(write(url))
        assert _postgres_running_on(pgdata)
    assert not _postgres_running_on(pgdata), "the server must stop when its context closes"

    with embedded_server(pgdata) as url:
        assert asyncio.run(read(url)) == "이사화물 통관"
