"""The model registry: the versions of each model, which one is served, rollback, and pruning the store."""

from __future__ import annotations

from fastapi import APIRouter, Query

from db import registry
from db.errors import NotFound
from deployments.http_errors import error_response
from deployments.routes.common import Served, allowed, errors
from tandem.artifacts import GarbageCollected, collect_garbage
from tandem.pipelines import MODELS

router = APIRouter(prefix="/v1/model-versions", tags=["model versions"], dependencies=[allowed("admin")],
                   responses=errors(401, 403))


def _unknown(pipeline: str):
    if pipeline not in MODELS:
        return error_response(404, f"no model named {pipeline!r} (one of {', '.join(MODELS)})", "not_found_error",
                              "pipeline")
    return None


@router.get("", response_model=list[registry.ModelVersion], responses=errors(404),
            summary="Every registered version, newest first: status, metrics, artifact hash, size and store.")
async def versions(services: Served, pipeline: str | None = Query(default=None)):
    if pipeline is not None and (refused := _unknown(pipeline)):
        return refused
    async with services.db.acquire() as conn:
        return await registry.list_versions(conn, pipeline)


@router.post("/{pipeline}/{version}/activate", response_model=registry.ModelVersion, responses=errors(404),
             summary="Serve this version of the model: every replica loads it and swaps it in.")
async def activate(pipeline: str, version: str, services: Served):
    if refused := _unknown(pipeline):
        return refused
    try:
        async with services.db.acquire() as conn:
            return await registry.activate(conn, pipeline, version)
    except NotFound as exc:
        return error_response(404, str(exc), "not_found_error", "version")


@router.post("/{pipeline}/rollback", response_model=registry.ModelVersion, responses=errors(404),
             summary="Serve again the version that was served before the current one.")
async def rollback(pipeline: str, services: Served):
    if refused := _unknown(pipeline):
        return refused
    try:
        async with services.db.acquire() as conn:
            return await registry.rollback(conn, pipeline)
    except NotFound as exc:
        return error_response(404, str(exc), "not_found_error", "pipeline")


@router.post("/gc", response_model=GarbageCollected,
             summary="Delete all but the active and the `keep` latest other versions of each model, and every "
                     "stored artifact no version names.")
async def gc(services: Served, keep: int = Query(default=3, ge=0, le=1000)):
    async with services.db.acquire() as conn:
        return await collect_garbage(conn, services.settings.artifact_url, keep)
