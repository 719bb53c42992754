"""A training run recorded in the database: `training_runs` row, progress while it trains, and on success
its artifact in the store every node reaches and a registered (and by default active) `model_versions` row, in
one step; a failure activates nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from db import connect, registry
from tandem.artifacts import local_version, node_cache, upload
from tandem.settings import Settings

PROGRESS_EVERY_S = 2.0
Work = Callable[[Callable[..., None]], dict]


def run(
    settings: Settings, url: str, pipeline: str, parameters: dict, version: str, output: Path, work: Work,
    activate: bool, run_id: int | None = None,
) -> dict:
    """Run `work(report)` in a thread; `report(**progress)` is written to the run's row every few seconds."""
    return asyncio.run(_run(settings, url, pipeline, parameters, version, output, work, activate, run_id))


async def _run(settings: Settings, url, pipeline, parameters, version, output, work: Work, activate, run_id) -> dict:
    async with connect(url) as conn:
        if run_id is None:
            run_id = await registry.start_run(conn, pipeline, parameters)
        else:
            await registry.mark_running(conn, run_id)
        latest: dict = {}
        # Training is CPU-bound for minutes; this connection only writes its progress.
        training = asyncio.ensure_future(asyncio.to_thread(work, lambda **p: latest.update(p)))
        written: dict = {}
        while not training.done():
            await asyncio.wait({training}, timeout=PROGRESS_EVERY_S)
            if latest != written:
                written = dict(latest)
                await registry.set_progress(conn, run_id, written)
        try:
            # Every training here runs where `train_num_gpus` says (Settings.model_device("train")).
            metrics = {**training.result(), "device": settings.model_device("train")}
        except Exception as exc:
            await registry.fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
            raise
        await register(conn, settings, run_id, pipeline, version, output, metrics, activate)
        return {**metrics, "version": version, "artifact": str(output), "run_id": run_id}


async def register(conn, settings: Settings, run_id: int, pipeline: str, version: str, output: Path, metrics: dict,
                   activate: bool) -> registry.ModelVersion:
    """Upload the artifact and register it in one transaction: chunks kept in the database are written with the
    row that names them; an object store's upload comes first, and an object no row names is left to `gc`."""
    async with conn.transaction():
        stored = await upload(conn, output, settings.artifact_url, node_cache(settings).folder)
        return await registry.finish_run(conn, run_id, pipeline, version, output, metrics, activate=activate,
                                         stored=stored)


def active_artifact(settings: Settings, url: str, pipeline: str) -> Path | None:
    """The active version's folder on this node (fetched from the store into the node's cache)."""
    async def lookup() -> Path | None:
        async with connect(url, migrate=False) as conn:
            active = await registry.active_version(conn, pipeline)
            return Path((await local_version(active, node_cache(settings), conn)).artifact_path) if active else None

    return asyncio.run(lookup())
