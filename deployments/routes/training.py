"""Retraining from the current database without blocking serving, and the runs' status."""

from __future__ import annotations

from fastapi import APIRouter, Query

from db import registry
from deployments.http_errors import error_response
from deployments.protocol.training import TrainAccepted, TrainRequest
from deployments.routes.common import Served, allowed, answered, errors, needs

router = APIRouter(prefix="/v1/train", tags=["training"], dependencies=[allowed("admin")], responses=errors(401, 403))


@router.post("", dependencies=[needs("trainer")], status_code=202, response_model=TrainAccepted,
             responses=errors(409, 422, 503),
             summary="Retrain from the current database without blocking serving; poll GET /v1/train/{id}.")
async def train(request: TrainRequest, services: Served):
    return answered(await services.trainer.submit.remote(request))


@router.get("", response_model=list[registry.TrainingRun],
            summary="The latest training runs, newest first, with their progress.")
async def train_runs(services: Served, limit: int = Query(default=20, ge=1, le=200)):
    async with services.db.acquire() as conn:
        return await registry.list_runs(conn, limit)


@router.get("/{run_id}", response_model=registry.TrainingRun, responses=errors(404),
            summary="A training run: status (queued, running, succeeded, failed), progress, metrics, error.")
async def train_status(run_id: int, services: Served):
    async with services.db.acquire() as conn:
        run = await registry.get_run(conn, run_id)
    if run is None:
        return error_response(404, f"no training run {run_id}", "not_found_error", "run_id")
    return run
