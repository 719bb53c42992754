"""Queries for training runs and model versions: how a trained artifact reaches serving."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import asyncpg
from pydantic import BaseModel

from db.errors import NotFound

CHANNEL = "model_versions"
_VERSION_COLUMNS = ("id, pipeline, version, artifact_path, status, metrics, artifact_sha256, artifact_size, "
                    "artifact_url, activated_at, created_at")


class Artifact(BaseModel):
    """A version's artifact in the store every node reaches (tandem/artifacts.py): its tar's SHA-256, size and
    where it is: 'postgres' (this database's chunk table) or an object's URL."""
    sha256: str
    size: int
    url: str


class ModelVersion(BaseModel):
    id: int
    pipeline: str
    version: str
    artifact_path: str  # where it was trained; on a serving node, where its copy is (tandem.artifacts.local_version)
    status: str
    metrics: dict
    artifact_sha256: str | None = None  # None: registered before the store, served from artifact_path only
    artifact_size: int | None = None
    artifact_url: str | None = None
    activated_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def artifact(self) -> Artifact | None:
        if self.artifact_sha256 is None:
            return None
        return Artifact(sha256=self.artifact_sha256, size=self.artifact_size, url=self.artifact_url)


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
    activate: bool = True, stored: Artifact | None = None,
) -> ModelVersion:
    """Record success and register the artifact trained in the folder `artifact` and kept in the store as
    `stored`; with `activate`, make it the one served, in one transaction, and tell listening deployments
    (NOTIFY model_versions, payload = pipeline)."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE training_runs SET status = 'succeeded', metrics = $2::jsonb, finished_at = now() WHERE id = $1",
            run_id, json.dumps(metrics),
        )
        if activate:
            await conn.execute("UPDATE model_versions SET status = 'retired' WHERE pipeline = $1 AND status = 'active'",
                               pipeline)
        row = await conn.fetchrow(
            f"""INSERT INTO model_versions (pipeline, version, artifact_path, metrics, status, training_run_id,
                                            artifact_sha256, artifact_size, artifact_url, activated_at)
                VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, CASE WHEN $10 THEN now() END)
                RETURNING {_VERSION_COLUMNS}""",
            pipeline, version, str(artifact), json.dumps(metrics), "active" if activate else "registered", run_id,
            stored.sha256 if stored else None, stored.size if stored else None, stored.url if stored else None,
            activate,
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
            f"""UPDATE model_versions SET status = 'active', activated_at = now() WHERE pipeline = $1 AND version = $2
                RETURNING {_VERSION_COLUMNS}""",
            pipeline, version,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, pipeline)
    return _version(row)


async def rollback(conn: asyncpg.Connection, pipeline: str) -> ModelVersion:
    """Serve again the version of `pipeline` that was active before the current one."""
    async with conn.transaction():
        earlier = await conn.fetchval(
            """SELECT version FROM model_versions
               WHERE pipeline = $1 AND status = 'retired' AND activated_at IS NOT NULL
               ORDER BY activated_at DESC, id DESC LIMIT 1""",
            pipeline,
        )
        if earlier is None:
            raise NotFound(f"no earlier {pipeline} version to roll back to")
        return await activate(conn, pipeline, earlier)


async def list_versions(conn: asyncpg.Connection, pipeline: str | None) -> list[ModelVersion]:
    """Every version (of `pipeline`, or of all), newest first."""
    rows = await conn.fetch(
        f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE $1::text IS NULL OR pipeline = $1 ORDER BY id DESC",
        pipeline,
    )
    return [_version(r) for r in rows]


async def prune(conn: asyncpg.Connection, keep: int) -> list[ModelVersion]:
    """Delete every version of each pipeline but the active one and the `keep` most recently served or created
    others (what a rollback may still want); returns the deleted ones."""
    rows = await conn.fetch(
        f"""DELETE FROM model_versions WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY pipeline
                                                  ORDER BY coalesce(activated_at, created_at) DESC, id DESC) AS n
                    FROM model_versions WHERE status <> 'active') others
                WHERE n > $1)
            RETURNING {_VERSION_COLUMNS}""",
        keep,
    )
    return [_version(r) for r in rows]


async def active_version(conn: asyncpg.Connection, pipeline: str) -> ModelVersion | None:
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE pipeline = $1 AND status = 'active'",
        pipeline,
    )
    return _version(row) if row else None


async def get_version(conn: asyncpg.Connection, pipeline: str, version: str) -> ModelVersion | None:
    row = await conn.fetchrow(
        f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE pipeline = $1 AND version = $2",
        pipeline, version,
    )
    return _version(row) if row else None


async def active_versions(conn: asyncpg.Connection, pipelines: list[str]) -> list[ModelVersion]:
    rows = await conn.fetch(
        f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE pipeline = ANY($1::text[]) AND status = 'active' "
        "ORDER BY pipeline",
        pipelines,
    )
    return [_version(r) for r in rows]
