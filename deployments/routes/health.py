"""Liveness and readiness: of every part and pipeline (`/readyz`), or of one pipeline (`/readyz/{pipeline}`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from db import bootstrap, registry
from deployments.health import (
    PARTS,
    BootstrapState,
    PipelineReadiness,
    Readiness,
    Waiting,
    bootstrap_state,
    readiness_of,
)
from deployments.http_errors import error_response
from deployments.pipelines.services import Services
from deployments.routes.common import Served, errors
from tandem.pipelines import ADAPTERS, PIPELINES

READY_TIMEOUT_S = 3.0

router = APIRouter(tags=["health"])


async def _down(reason: str) -> tuple[None, str]:
    return None, f"not ready: {reason}"


async def _ask(pending) -> tuple[object, str]:
    """A deployment's answer and "ok", or None and why it is not ready."""
    try:
        return await asyncio.wait_for(pending, READY_TIMEOUT_S), "ok"
    except Exception as exc:
        return None, f"not ready: {type(exc).__name__} {exc}".strip()


async def checks_of(services: Services, parts: set[str]) -> tuple[dict[str, str], dict[str, object]]:
    """"ok" or why not for each of `parts`, and what the deployments asked answered."""
    checks: dict[str, str] = {}
    if "database" in parts:
        try:
            await services.db.ping(timeout=READY_TIMEOUT_S)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {exc}"
    if "trainer" in parts:
        checks["trainer"] = services.deployments.problem("trainer") or "ok"
    # A deployment the controller reports down is not asked (the call would wait for a replica); the others
    # are asked at once, so a stuck one costs one timeout, not one each.
    calls = {name: method for name, method in (
        ("llm", services.llm.adapter_versions), ("candidates", services.candidates.active_version),
        ("retriever", services.retriever.status), ("keywords", services.keywords.active_version)) if name in parts}
    asked = dict(zip(calls, await asyncio.gather(*(
        _down(reason) if (reason := services.deployments.problem(name)) else _ask(method.remote())
        for name, method in calls.items())), strict=True))
    checks |= {name: state for name, (_, state) in asked.items()}
    return checks, {name: answer for name, (answer, _) in asked.items()}


async def bootstrap_now(services: Services) -> tuple[BootstrapState | None, dict[str, Waiting]]:
    """The first-run bootstrap, if this database had one, and what each pipeline waits for of it."""
    try:
        async with services.db.acquire() as conn:
            steps = await bootstrap.steps(conn)
            running = [s.run_id for s in steps if s.status == "running" and s.run_id is not None]
            progress = {r: run.progress for r in running if (run := await registry.get_run(conn, r)) is not None}
            now = await conn.fetchval("SELECT now()")
    except Exception:  # the database check says why
        return None, {}
    return bootstrap_state(steps, progress, now) if steps else (None, {})


async def readiness(services: Services) -> Readiness:
    (checks, answers), (boot, waiting) = await asyncio.gather(checks_of(services, set(PARTS)),
                                                              bootstrap_now(services))
    status = answers["retriever"]
    models = {name: (answers["llm"] or {}).get(name) for name in ADAPTERS}
    # A pipeline without a trained model yet is reported, not "not ready": the rest of the service works.
    models |= {"lrurec": answers["candidates"], "kobart": answers["keywords"],
               "index": status.pop("index") if status else None}
    pipelines = {name: readiness_of(p, checks, waiting.get(name)) for name, p in PIPELINES.items()}
    return Readiness(status="ready" if all(v == "ok" for v in checks.values()) else "not ready", checks=checks,
                     pipelines=pipelines, models=models, retrieval=status, bootstrap=boot)


@router.get("/healthz", summary="Liveness: the HTTP process answers.")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness,
            summary="Readiness of every part and pipeline; 200 only when all are ready.")
async def readyz(services: Served) -> JSONResponse:
    body = await readiness(services)
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)


@router.get("/readyz/{pipeline}", response_model=PipelineReadiness, responses=errors(404),
            summary="One pipeline's readiness: 200 when it answers (ready, or degraded and flagged), else 503.")
async def pipeline_readyz(pipeline: str, services: Served) -> JSONResponse:
    if pipeline not in PIPELINES:
        return error_response(404, f"no pipeline {pipeline!r}; pipelines: {', '.join(PIPELINES)}",
                              "not_found_error", "pipeline")
    # Only its own parts are checked: a stuck LLM does not slow the keyword pipeline's probe.
    (checks, _), (_, waiting) = await asyncio.gather(checks_of(services, PIPELINES[pipeline].parts()),
                                                     bootstrap_now(services))
    state = readiness_of(PIPELINES[pipeline], checks, waiting.get(pipeline))
    return JSONResponse(state.model_dump(), status_code=503 if state.status == "unavailable" else 200)
