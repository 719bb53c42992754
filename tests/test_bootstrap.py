"""The first-run bootstrap's bookkeeping on a real database: it loads what is missing, trains what has no active
version (named quick), resumes a step a stop interrupted, never redoes what is there, and a failing step does not
stop the next ones. The whole bootstrap, in a running stack, is tested in tests/test_stack.py."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from db import bootstrap as steps_db
from db import connect, registry
from tandem.settings import Settings
from training.bootstrap import STEPS, run_bootstrap, wanted

DATA_AND_LRUREC = tuple(s for s in STEPS if s.name in ("movielens", "books", "lrurec"))
TINY = {"lrurec": {"max_epochs": 1, "hidden": 32, "max_len": 20}}


async def _query(url: str, work):
    async with connect(url) as conn:
        return await work(conn)


def _statuses(url: str) -> dict[str, str]:
    return {s.name: s.status for s in asyncio.run(_query(url, steps_db.steps))}


def test_an_empty_database_is_bootstrapped_once_and_resumed_after_a_stop(settings: Settings, fresh_db: str) -> None:
    settings = settings.model_copy(update={"bootstrap_options": TINY})
    assert asyncio.run(_query(fresh_db, wanted)) is True

    taken = run_bootstrap(settings, fresh_db, steps=DATA_AND_LRUREC)
    assert taken == {"movielens": "done", "books": "done", "lrurec": "done"}
    active = asyncio.run(_query(fresh_db, lambda c: registry.active_version(c, "lrurec")))
    assert active.version.endswith("-quick") and active.metrics["epochs_run"] == 1
    assert asyncio.run(_query(fresh_db, wanted)) is False  # every step ended: a restart does nothing

    # A stop in the middle of the LRURec step leaves it running; the next start resumes it, and the data steps
    # that ended are not taken again.
    async def interrupt(conn: asyncpg.Connection) -> int:
        run_id = await registry.queue_run(conn, "lrurec", {"preset": "quick", "bootstrap": True})
        await conn.execute("UPDATE model_versions SET status = 'registered' WHERE pipeline = 'lrurec'")
        await steps_db.start(conn, "lrurec", run_id)
        return run_id

    stopped_run = asyncio.run(_query(fresh_db, interrupt))
    assert asyncio.run(_query(fresh_db, wanted)) is True
    assert run_bootstrap(settings, fresh_db, steps=DATA_AND_LRUREC) == {"lrurec": "done"}
    stopped = asyncio.run(_query(fresh_db, lambda c: registry.get_run(c, stopped_run)))
    assert stopped.status == "failed" and "interrupted" in stopped.error
    again = asyncio.run(_query(fresh_db, lambda c: registry.active_version(c, "lrurec")))
    assert again.version != active.version and again.version.endswith("-quick")

    # On purpose (`tandem bootstrap`): every step is looked at again, and skipped, since all is there.
    assert run_bootstrap(settings, fresh_db, again=True, steps=DATA_AND_LRUREC) == dict.fromkeys(
        ("movielens", "books", "lrurec"), "skipped")
    last = asyncio.run(_query(fresh_db, lambda c: registry.active_version(c, "lrurec")))
    assert last.version == again.version  # a model with an active version is never retrained


def test_a_failing_step_is_recorded_and_the_next_ones_still_run(settings: Settings, fresh_db: str,
                                                                 tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(settings.data_dir / "ml-latest-small", data / "ml-latest-small")  # no books folder
    settings = settings.model_copy(update={"data_dir": data, "bootstrap_options": TINY})
    taken = run_bootstrap(settings, fresh_db, steps=DATA_AND_LRUREC)
    assert taken == {"movielens": "done", "books": "failed", "lrurec": "done"}
    books = next(s for s in asyncio.run(_query(fresh_db, steps_db.steps)) if s.name == "books")
    assert "aladin_raw_data.csv is missing" in books.detail
    assert _statuses(fresh_db) == {"movielens": "done", "books": "failed", "lrurec": "done"}


def test_a_step_whose_process_died_is_failed_and_the_rest_still_run(settings: Settings, fresh_db: str) -> None:
    """What the trainer does when the bootstrap's Ray task dies: the step it was in fails, a new task goes on."""
    steps = tuple(s for s in STEPS if s.name in ("movielens", "books"))

    async def die_in_movielens(conn: asyncpg.Connection) -> list[str]:
        await steps_db.plan(conn, [(s.name, s.expected_s) for s in steps])
        await steps_db.start(conn, "movielens")
        return await steps_db.fail_running(conn, "the bootstrap task died: OutOfMemoryError")

    assert asyncio.run(_query(fresh_db, die_in_movielens)) == ["movielens"]
    assert asyncio.run(_query(fresh_db, wanted)) is True
    assert run_bootstrap(settings, fresh_db, steps=steps) == {"books": "done"}
    recorded = {s.name: s for s in asyncio.run(_query(fresh_db, steps_db.steps))}
    assert recorded["movielens"].status == "failed" and "OutOfMemoryError" in recorded["movielens"].detail
    assert asyncio.run(_query(fresh_db, wanted)) is False


def test_a_database_that_holds_data_is_not_bootstrapped(fresh_db: str) -> None:
    async def add_user(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO users (external_id) VALUES ('someone')")

    asyncio.run(_query(fresh_db, add_user))
    assert asyncio.run(_query(fresh_db, wanted)) is False


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_every_step_names_the_pipelines_that_wait_for_it(step) -> None:
    from tandem.pipelines import PIPELINES

    assert step.pipelines and set(step.pipelines) <= set(PIPELINES) and step.expected_s > 0
