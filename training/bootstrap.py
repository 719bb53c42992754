"""The first run on an empty database: load the shared data and train every model with the quick preset, so that
every pipeline answers from its own trained model minutes after `make run`.

Steps run in order, one at a time (a 2-core node also serves meanwhile): the data imports, then the models in
the order that makes pipelines answer soonest, each trained as a recorded run (`training_runs`) and activated
when it succeeds, so the deployments pick it up at once. A step with nothing to do is skipped: data already
there, or a model that has an active version (a restart never retrains one). The steps' state is in
`bootstrap_steps`, which readiness reads and a restart resumes from; a failed step is recorded and the next ones
still run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from db import bootstrap as steps_db
from db import connect, registry
from tandem.pipelines import PIPELINES
from tandem.settings import Settings
from training.pipelines import RUNS, TrainOptions

log = logging.getLogger("tandem.bootstrap")


@dataclass(frozen=True)
class Step:
    name: str
    expected_s: float  # with the quick preset on a 2-core node (docs/benchmarks.md), for readiness's ETA
    pipelines: tuple[str, ...]  # the pipelines that wait for it
    done: Callable[[asyncpg.Connection], Awaitable[bool]]  # nothing left to do
    run: Callable[[Settings, str, int | None], str | None]  # its detail, e.g. what was loaded


def _exists(table: str) -> Callable[[asyncpg.Connection], Awaitable[bool]]:
    async def check(conn: asyncpg.Connection) -> bool:
        return await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")

    return check


def _active(model: str) -> Callable[[asyncpg.Connection], Awaitable[bool]]:
    async def check(conn: asyncpg.Connection) -> bool:
        return await registry.active_version(conn, model) is not None

    return check


def _data_file(settings: Settings, *parts: str) -> Path:
    path = settings.data_dir.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (TANDEM_DATA_DIR is {settings.data_dir})")
    return path


def _import(work: Callable[[asyncpg.Connection], Awaitable[object]], url: str) -> str:
    async def go() -> str:
        async with connect(url) as conn:
            return str(await work(conn))

    return asyncio.run(go())


def import_movielens(settings: Settings, url: str, run_id: int | None) -> str:
    from db.importers import import_ratings

    ratings = _data_file(settings, "ml-latest-small", "ratings.csv")
    movies = _data_file(settings, "ml-latest-small", "movies.csv")
    return _import(lambda conn: import_ratings(conn, ratings, movies), url)


def import_korquad_dev(settings: Settings, url: str, run_id: int | None) -> str:
    from db.importers import import_korquad

    path = _data_file(settings, "korquad-v1", "KorQuAD_v1.0_dev.json")
    return _import(lambda conn: import_korquad(conn, path), url)


def import_catalogue(settings: Settings, url: str, run_id: int | None) -> str:
    from db.importers import import_books

    path = _data_file(settings, "books", "aladin_raw_data.csv")
    return _import(lambda conn: import_books(conn, path), url)


def import_keyword_pairs(settings: Settings, url: str, run_id: int | None) -> str:
    from training.keywords import SILVER, SILVER_SENTENCES, silver_pairs, silver_sentence_pairs, store_pairs

    korquad = _data_file(settings, "korquad-v1", "KorQuAD_v1.0_dev.json")
    stored = {source: asyncio.run(store_pairs(url, pairs, source)) for source, pairs in
              ((SILVER, silver_pairs(korquad)), (SILVER_SENTENCES, silver_sentence_pairs(korquad)))}
    return f"keyword pairs {stored}"


def quick_options(settings: Settings) -> TrainOptions:
    """The quick preset, with what TANDEM_BOOTSTRAP_OPTIONS changes in it."""
    return TrainOptions.model_validate({**settings.bootstrap_options, "preset": "quick"})


def _train(model: str) -> Callable[[Settings, str, int | None], str | None]:
    def train(settings: Settings, url: str, run_id: int | None) -> str:
        RUNS[model](settings, url, run_id, quick_options(settings))
        return "trained with the quick preset"

    return train


def _serving(*models: str) -> tuple[str, ...]:
    return tuple(name for name, p in PIPELINES.items() if set(models) & set(p.models))


# The data first (seconds each), then the models in the order that makes pipelines answer soonest: the ranker after
# the LRURec it is trained on, the keyword model last (the longest, and the analyser answers keyword requests
# meanwhile).
STEPS: tuple[Step, ...] = (
    Step("movielens", 15, ("recommendation", "candidates"), _exists("interactions"), import_movielens),
    Step("korquad", 10, ("qa", "retrieval"), _exists("passages"), import_korquad_dev),
    Step("books", 5, ("books",), _exists("books"), import_catalogue),
    Step("keyword-pairs", 40, ("keywords",), _exists("keyword_pairs"), import_keyword_pairs),
    Step("lrurec", 60, _serving("lrurec"), _active("lrurec"), _train("lrurec")),
    Step("dpr", 40, (*_serving("index"), "books"), _active("index"), _train("dpr")),
    Step("ranker", 90, _serving("ranker"), _active("ranker"), _train("ranker")),
    Step("qa", 80, _serving("qa"), _active("qa"), _train("qa")),
    Step("kobart", 300, _serving("kobart"), _active("kobart"), _train("kobart")),
)
TRAINED = {"lrurec", "dpr", "kobart", "ranker", "qa"}


async def wanted(conn: asyncpg.Connection) -> bool:
    """Whether to bootstrap: one was started and has steps left, or none was and the database holds no data."""
    recorded = await steps_db.steps(conn)
    if recorded:
        return any(s.status in ("queued", "running") for s in recorded)
    return not await steps_db.holds_data(conn)


async def plan(conn: asyncpg.Connection, steps: tuple[Step, ...] = STEPS) -> None:
    """Record the steps, so that readiness shows them before the first one starts."""
    await steps_db.plan(conn, [(s.name, s.expected_s) for s in steps])


async def _prepare(url: str, steps: tuple[Step, ...], again: bool) -> None:
    async with connect(url) as conn:
        await plan(conn, steps)
        if resumed := await steps_db.requeue_interrupted(conn):
            log.warning("bootstrap resumed", extra={"steps": resumed})
        if again:
            await steps_db.requeue_ended(conn)


async def _begin(url: str, step: Step) -> str | int | None:
    """"ended" when the step already ended (a resumed bootstrap), "skipped" when there is nothing to do, else the
    step is started: its queued training run's id, or None for a data import."""
    async with connect(url) as conn:
        state = next(s.status for s in await steps_db.steps(conn) if s.name == step.name)
        if state in ("done", "skipped", "failed"):
            return "ended"
        if await step.done(conn):
            await steps_db.finish(conn, step.name, "skipped", "already there")
            return "skipped"
        run_id = await registry.queue_run(conn, step.name, {"preset": "quick", "bootstrap": True}) \
            if step.name in TRAINED else None
        await steps_db.start(conn, step.name, run_id)
        return run_id


async def _end(url: str, step: Step, status: str, detail: str | None) -> None:
    async with connect(url) as conn:
        await steps_db.finish(conn, step.name, status, detail)


def run_bootstrap(settings: Settings, url: str, again: bool = False, steps: tuple[Step, ...] = STEPS,
                  on_step: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Every step left, in order (`again`: every step, each still skipped when its data or model is there);
    `on_step(name, status)` hears each start and end. Returns the status of each step taken now."""
    asyncio.run(_prepare(url, steps, again))
    outcome: dict[str, str] = {}
    for step in steps:
        begun = asyncio.run(_begin(url, step))
        if begun == "ended":
            continue
        if begun == "skipped":
            outcome[step.name] = "skipped"
            continue
        if on_step:
            on_step(step.name, "running")
        started = time.monotonic()
        try:
            detail, status = step.run(settings, url, begun), "done"
        except Exception as exc:  # a step that fails is recorded; the pipelines it serves keep their fallbacks
            detail, status = f"{type(exc).__name__}: {exc}", "failed"
            log.warning("bootstrap step failed", extra={"step": step.name, "error": detail})
        asyncio.run(_end(url, step, status, detail))
        outcome[step.name] = status
        log.info("bootstrap step", extra={"step": step.name, "status": status,
                                          "seconds": round(time.monotonic() - started, 1)})
        if on_step:
            on_step(step.name, status)
    return outcome
