"""Readiness per pipeline, and which model deployments can take requests as the Serve controller sees them.

A handle call to a deployment with no running replica waits for one; a deployment whose replicas fail to
start (a bad model path, no resources left) would hold every request of its routes until their timeouts. The
ingress asks the controller every few seconds instead, and a route whose deployment is down answers 503 at
once with the controller's reason, while routes that do not need it keep serving.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from pydantic import BaseModel, Field
from ray.serve.context import _get_global_client
from ray.serve.handle import DeploymentHandle

from db.bootstrap import BootstrapStep
from tandem.pipelines import PIPELINES, Pipeline
from training.bootstrap import STEPS

log = logging.getLogger("tandem.health")

REFRESH_S = 2.0


class DeploymentDown(Exception):
    def __init__(self, deployment: str, reason: str):
        super().__init__(f"the {deployment} deployment is unavailable: {reason}")
        self.deployment, self.reason = deployment, reason


def serve_details() -> dict:
    """The controller's view of applications, deployments and replicas, as the dict it sends. `serve.status()`
    makes the same call and then builds its schema, which cloudpickles every deployment's request router class:
    ~12x the time, a steady few percent of a core in the ingress at this refresh rate (docs/benchmarks.md)."""
    client = _get_global_client(raise_if_no_controller_running=False)
    return client.get_serve_details() if client else {}


def problems(details: dict, targets: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Why each deployment cannot take requests; those that can are left out. `targets` maps our name for a
    deployment to its (application, deployment) in Serve."""
    found = {}
    for name, (app_name, deployment_name) in targets.items():
        app = details.get("applications", {}).get(app_name)
        deployment = app["deployments"].get(deployment_name) if app else None
        if deployment is None:
            found[name] = f"{deployment_name} is not deployed in application {app_name!r}"
        elif not any(replica["state"] == "RUNNING" for replica in deployment["replicas"]):
            status = getattr(deployment["status"], "value", deployment["status"])
            detail = f": {deployment['message']}" if deployment["message"] else ""
            found[name] = f"{deployment_name} has no running replica ({status}{detail})"
    return found


class DeploymentStates:
    """The last known problem of each model deployment, refreshed in the background."""

    def __init__(self, handles: dict[str, DeploymentHandle], refresh_s: float = REFRESH_S):
        self.targets = {name: (h.app_name, h.deployment_name) for name, h in handles.items()}
        self.refresh_s = refresh_s
        self.problems: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            try:
                # The call blocks on the controller; a thread keeps this replica's event loop free.
                self.problems = problems(await asyncio.to_thread(serve_details), self.targets)
            except Exception as exc:  # the controller restarting: keep the last known states
                log.warning("deployment states unavailable", extra={"error": str(exc)})
            await asyncio.sleep(self.refresh_s)

    def problem(self, name: str) -> str | None:
        return self.problems.get(name)


# What readiness checks: the database and the deployments the pipelines need.
PARTS = tuple(sorted({part for p in PIPELINES.values() for part in p.parts()}))


class Waiting(BaseModel):
    """What a pipeline waits for while the first-run bootstrap loads its data or trains its models."""

    step: str = Field(description="The bootstrap step it waits for now (running or next).")
    eta_s: float = Field(description="Seconds until its last step ends, estimated from the steps' usual times.")


class PipelineReadiness(BaseModel):
    status: str  # ready, degraded (answers, flagged, without a part), bootstrapping (answers, from fallbacks
    # until its data and models are there) or unavailable
    reason: str | None = None
    bootstrapping: Waiting | None = None


class BootstrapStepState(BaseModel):
    name: str
    status: str = Field(description="queued, running, done, skipped (nothing to do) or failed.")
    detail: str | None = None
    run_id: int | None = Field(default=None, description="Its training run (GET /v1/train/{id}), for a model.")
    progress: dict | None = Field(default=None, description="The running training's last progress report.")


class BootstrapState(BaseModel):
    status: str = Field(description="running or finished.")
    steps: list[BootstrapStepState]
    eta_s: float | None = Field(description="Seconds until every step has ended, estimated; None once finished.")


def bootstrap_state(steps: list[BootstrapStep], progress: dict[int, dict], now: datetime,
                    ) -> tuple[BootstrapState, dict[str, Waiting]]:
    """The bootstrap as readiness shows it, and what each pipeline still waits for. A running step is expected to
    take its usual time (at least a few more seconds); queued ones their usual times, one after another."""
    pending = [s for s in steps if s.status in ("queued", "running")]
    ends, elapsed, waiting = {}, 0.0, {}
    for s in pending:
        spent = (now - s.started_at).total_seconds() if s.status == "running" and s.started_at else 0.0
        elapsed += max(s.expected_s - spent, 5.0)
        ends[s.name] = elapsed
    serves = {step.name: step.pipelines for step in STEPS}
    for s in pending:
        for pipeline in serves.get(s.name, ()):
            first = waiting.setdefault(pipeline, Waiting(step=s.name, eta_s=0.0))
            first.eta_s = round(ends[s.name])
    state = BootstrapState(
        status="running" if pending else "finished", eta_s=round(elapsed) if pending else None,
        steps=[BootstrapStepState(name=s.name, status=s.status, detail=s.detail, run_id=s.run_id,
                                  progress=progress.get(s.run_id) if s.status == "running" else None)
               for s in steps])
    return state, waiting


def readiness_of(pipeline: Pipeline, checks: dict[str, str], waiting: Waiting | None = None) -> PipelineReadiness:
    """A pipeline's readiness from the checks of its parts ("ok" or why not) and what it waits for of the
    bootstrap."""
    missing = [f"{part}: {checks[part]}" for part in pipeline.requires if checks[part] != "ok"]
    lacking = [f"{part}: {checks[part]}" for part in pipeline.degrades_without if checks[part] != "ok"]
    if missing:
        return PipelineReadiness(status="unavailable", reason="; ".join(missing + lacking), bootstrapping=waiting)
    if waiting is not None:
        return PipelineReadiness(status="bootstrapping", reason=f"the first-run bootstrap is at {waiting.step}",
                                 bootstrapping=waiting)
    if lacking:
        return PipelineReadiness(status="degraded", reason="; ".join(lacking))
    return PipelineReadiness(status="ready")


class Readiness(BaseModel):
    status: str  # ready or not ready
    checks: dict[str, str]  # each part: "ok" or why not
    pipelines: dict[str, PipelineReadiness]
    models: dict[str, str | None]  # the version each pipeline serves, None before one is trained
    retrieval: dict | None  # the retriever's collections
    bootstrap: BootstrapState | None = None  # the first-run bootstrap, when this database had one
