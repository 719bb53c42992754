"""Queries for the first-run bootstrap: whether the database holds data, and the state of each step."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

from db.registry import fail_unfinished


class BootstrapStep(BaseModel):
    name: str
    position: int
    status: str  # queued, running, done, skipped (there was nothing to do) or failed
    detail: str | None
    run_id: int | None
    expected_s: float
    started_at: datetime | None
    finished_at: datetime | None


async def holds_data(conn: asyncpg.Connection) -> bool:
    """Whether anything was loaded: users, items, documents or books."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM items)
                  OR EXISTS (SELECT 1 FROM documents) OR EXISTS (SELECT 1 FROM books)""")


async def steps(conn: asyncpg.Connection) -> list[BootstrapStep]:
    rows = await conn.fetch(
        """SELECT name, position, status, detail, run_id, expected_s, started_at, finished_at
           FROM bootstrap_steps ORDER BY position""")
    return [BootstrapStep(**r) for r in rows]


async def plan(conn: asyncpg.Connection, planned: list[tuple[str, float]]) -> None:
    """Record the steps (name, expected seconds) in order; steps already recorded keep their state."""
    await conn.executemany(
        """INSERT INTO bootstrap_steps (name, position, expected_s) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, expected_s = EXCLUDED.expected_s""",
        [(name, i, expected) for i, (name, expected) in enumerate(planned)])


async def requeue_interrupted(conn: asyncpg.Connection) -> list[str]:
    """Steps left running by a process that stopped, queued again (their training runs failed as interrupted)."""
    rows = await conn.fetch(
        """UPDATE bootstrap_steps SET status = 'queued', started_at = NULL, detail = 'interrupted; resumed'
           WHERE status = 'running' RETURNING name, run_id""")
    await fail_unfinished(conn, [r["run_id"] for r in rows if r["run_id"] is not None],
                          "interrupted: the bootstrap was stopped")
    return [r["name"] for r in rows]


async def fail_running(conn: asyncpg.Connection, reason: str) -> list[str]:
    """The step that was running failed with `reason` (its process died), and its training run with it."""
    rows = await conn.fetch(
        """UPDATE bootstrap_steps SET status = 'failed', detail = $1, finished_at = now()
           WHERE status = 'running' RETURNING name, run_id""", reason)
    await fail_unfinished(conn, [r["run_id"] for r in rows if r["run_id"] is not None], reason)
    return [r["name"] for r in rows]


async def requeue_ended(conn: asyncpg.Connection) -> None:
    await conn.execute("""UPDATE bootstrap_steps SET status = 'queued', detail = NULL, run_id = NULL,
                                 started_at = NULL, finished_at = NULL WHERE status <> 'running'""")


async def start(conn: asyncpg.Connection, name: str, run_id: int | None = None) -> None:
    await conn.execute(
        """UPDATE bootstrap_steps SET status = 'running', started_at = now(), finished_at = NULL, run_id = $2,
                  detail = NULL WHERE name = $1""", name, run_id)


async def finish(conn: asyncpg.Connection, name: str, status: str, detail: str | None = None) -> None:
    await conn.execute(
        "UPDATE bootstrap_steps SET status = $2, detail = $3, finished_at = now() WHERE name = $1",
        name, status, detail)
