"""Queries for training runs and model versions: how a trained artifact reaches serving."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import asyncpg
from pydantic import BaseModel

from db.errors import NotFound

CHANNEL = "model_versions"


class ModelVersion(BaseModel):
    id: int
    pipeline: str
    version: str
    artifact_path: str
    status: str
    metrics: dict


class TrainingRun(BaseModel):
    id: int
    pipeline: str
    status: str
    parameters: dict
    progress: dict
    metrics: dict
    error: str | None
    model_version: str | None = None  # the version a successful run registered
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _run(row: asyncpg.Record) -> TrainingRun:
    return TrainingRun(**{**row, **{k: json.loads(row[k]) for k in ("parameters", "progress", "metrics")}})


def _version(row: asyncpg.Record) -> ModelVersion:
    return ModelVersion(**{**row, "metrics": json.loads(row["metrics"])})


async def queue_run(conn: asyncpg.Connection, pipeline: str, parameters: dict) -> int:
    return await conn.fetchval(
        "INSERT INTO training_runs (pipeline, status, parameters) VALUES ($1, 'queued', $2::jsonb) RETURNING id",
        pipeline, json.dumps(parameters, default=str),
    )


async def mark_running(conn: asyncpg.Connection, run_id: int) -> None:
    await conn.execute("UPDATE training_runs SET status = 'running', started_at = now() WHERE id = $1", run_id)


async def fail_unfinished(conn: asyncpg.Connection, run_ids: list[int], error: str) -> None:
    """Fail the runs of `run_ids` that have not ended (a run that already failed keeps its own error)."""
    await conn.execute(
        """UPDATE training_runs SET status = 'failed', error = $2, finished_at = now(),
                  started_at = coalesce(started_at, now())
           WHERE id = ANY($1::bigint[]) AND status IN ('queued', 'running')""",
        run_ids, error,
    )


async def set_progress(conn: asyncpg.Connection, run_id: int, progress: dict) -> None:
    await conn.execute("UPDATE training_runs SET progress = $2::jsonb WHERE id = $1", run_id, json.dumps(progress))


async def get_run(conn: asyncpg.Connection, run_id: int) -> TrainingRun | None:
    row = await conn.fetchrow(
        """SELECT r.id, r.pipeline, r.status, r.parameters, r.progress, r.metrics, r.error, v.version AS model_version,
                  r.created_at, r.started_at, r.finished_at
           FROM training_runs r LEFT JOIN model_versions v ON v.training_run_id = r.id WHERE r.id = $1""",
        run_id,
    )
    return _run(row) if row is not None else None


async def list_runs(conn: asyncpg.Connection, limit: int = 20) -> list[TrainingRun]:
    """The latest runs, newest first."""
    rows = await conn.fetch(
        """SELECT r.id, r.pipeline, r.status, r.parameters, r.progress, r.metrics, r.error, v.version AS model_version,
                  r.created_at, r.started_at, r.finished_at
           FROM training_runs r LEFT JOIN model_versions v ON v.training_run_id = r.id ORDER BY r.id DESC LIMIT $1""",
        limit,
    )
    return [_run(r) for r in rows]


async def start_run(conn: asyncpg.Connection, pipeline: str, parameters: dict) -> int:
    return await conn.fetchval(
        """INSERT INTO training_runs (pipeline, status, parameters, started_at)
           VALUES ($1, 'running', $2::jsonb, now()) RETURNING id""",
        pipeline, json.dumps(parameters, default=str),
    )


async def fail_run(conn: asyncpg.Connection, run_id: int, error: str) -> None:
    await conn.execute(
        """UPDATE training_runs SET status = 'failed', error = $2, finished_at = now(),
                  started_at = coalesce(started_at, now()) WHERE id = $1""",
        run_id, error,
    )


async def finish_run(
    conn: asyncpg.Connection, run_id: int, pipeline: str, version: str, artifact: Path, metrics: dict,
    activate: bool = True,
) -> ModelVersion:
    """Record success and register the artifact; with `activate`, make it the one served, in one transaction,
    and tell listening deployments (NOTIFY model_versions, payload = pipeline)."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE training_runs SET status = 'succeeded', metrics = $2::jsonb, finished_at = now() WHERE id = $1",
            run_id, json.dumps(metrics),
        )
        if activate:
            await conn.execute("UPDATE model_versions SET status = 'retired' WHERE pipeline = $1 AND status = 'active'",
                               pipeline)
        row = await conn.fetchrow(
            """INSERT INTO model_versions (pipeline, version, artifact_path, metrics, status, training_run_id)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6)
               RETURNING id, pipeline, version, artifact_path, status, metrics""",
            pipeline, version, str(artifact), json.dumps(metrics), "active" if activate else "registered", run_id,
        )
        if activate:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, pipeline)
    return _version(row)


async def activate(conn: asyncpg.Connection, pipeline: str, version: str) -> ModelVersion:
    """Make a registered version of `pipeline` the one served (an earlier one: a rollback), and tell the
    deployments as a training run's activation does."""
    async with conn.transaction():
        if await get_version(conn, pipeline, version) is None:
            raise NotFound(f"no {pipeline} version {version!r}")
        await conn.execute("UPDATE model_versions SET status = 'retired' WHERE pipeline = $1 AND status = 'active'",
                           pipeline)
        row = await conn.fetchrow(
            """UPDATE model_versions SET status = 'active' WHERE pipeline = $1 AND version = $2
               RETURNING id, pipeline, version, artifact_path, status, metrics""",
            pipeline, version,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, pipeline)
    return _version(row)


async def active_version(conn: asyncpg.Connection, pipeline: str) -> ModelVersion | None:
    row = await conn.fetchrow(
        """SELECT id, pipeline, version, artifact_path, status, metrics FROM model_versions
           WHERE pipeline = $1 AND status = 'active'""",
        pipeline,
    )
    return _version(row) if row else None


async def get_version(conn: asyncpg.Connection, pipeline: str, version: str) -> ModelVersion | None:
    row = await conn.fetchrow(
        """SELECT id, pipeline, version, artifact_path, status, metrics FROM model_versions
           WHERE pipeline = $1 AND version = $2""",
        pipeline, version,
    )
    return _version(row) if row else None


async def active_versions(conn: asyncpg.Connection, pipelines: list[str]) -> list[ModelVersion]:
    rows = await conn.fetch(
        """SELECT id, pipeline, version, artifact_path, status, metrics FROM model_versions
           WHERE pipeline = ANY($1::text[]) AND status = 'active' ORDER BY pipeline""",
        pipelines,
    )
    return [_version(r) for r in rows]
