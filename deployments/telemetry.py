"""Tandem's own Prometheus metrics, exported through Ray's metrics agent beside Serve's and vLLM's.

Per pipeline (the FastAPI tag of the route): requests by status class and latency, measured by the ingress
middleware. Per stage of a pipeline (candidates, ranking, retrieval, generation): latency as the ingress sees
it, queueing in the model deployment included. Fallbacks taken, by pipeline and the stage that fell back. The
model versions each replica serves. Batch sizes and per-call latency live in the model deployments; tokens and
time to first token in the LLM deployment and in vLLM's own metrics.

Metrics are made on first use, inside the replica, so Serve adds its deployment/replica/application tags.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import contextmanager
from functools import cache
from typing import TypeVar

from ray.serve.metrics import Counter, Gauge, Histogram

T = TypeVar("T")

# Seconds; from a keyword lookup on a warm model to an LLM answer on a busy CPU.
LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]


def replica_logs() -> None:
    """Our loggers (`tandem.*`) and vLLM's write where this replica's Serve logger writes: its JSON log file (the
    deployment's `logging_config`), where Serve adds to each line the request id, route, deployment and replica."""
    # Left to configure its own logging, vLLM runs dictConfig when imported, which closes every handler of the
    # process: Serve's log file would stop at the engine's start.
    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
    serve_logger = logging.getLogger("ray.serve")
    for name in ("tandem", "vllm"):
        ours = logging.getLogger(name)
        ours.handlers[:] = serve_logger.handlers
        ours.setLevel(serve_logger.level)
        ours.propagate = False


class PipelineMetrics:
    def __init__(self) -> None:
        self.requests = Counter("tandem_pipeline_requests", description="HTTP requests by pipeline and status class.",
                                tag_keys=("pipeline", "status"))
        self.latency = Histogram(
            "tandem_pipeline_seconds", boundaries=LATENCY_BOUNDARIES, tag_keys=("pipeline",),
            description="Time until the response is sent, by pipeline (a whole stream for streaming answers).")
        self.stages = Histogram("tandem_stage_seconds", boundaries=LATENCY_BOUNDARIES,
                                description="Latency of a pipeline stage seen from the ingress, queueing included.",
                                tag_keys=("pipeline", "stage"))
        self.fallbacks = Counter("tandem_fallbacks", description="Answers given without a stage's own result.",
                                 tag_keys=("pipeline", "stage"))

    def request(self, pipeline: str, status: int, seconds: float) -> None:
        self.requests.inc(tags={"pipeline": pipeline, "status": f"{status // 100}xx"})
        self.latency.observe(seconds, tags={"pipeline": pipeline})

    @contextmanager
    def stage(self, pipeline: str, stage: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.stages.observe(time.monotonic() - started, tags={"pipeline": pipeline, "stage": stage})

    async def timed(self, pipeline: str, stage: str, call: Awaitable[T]) -> T:
        with self.stage(pipeline, stage):
            return await call

    async def timed_stream(self, pipeline: str, stage: str, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
        with self.stage(pipeline, stage):
            async for chunk in chunks:
                yield chunk

    def fallback(self, pipeline: str, stage: str) -> None:
        self.fallbacks.inc(tags={"pipeline": pipeline, "stage": stage})


@cache
def pipeline_metrics() -> PipelineMetrics:
    return PipelineMetrics()


class ServedVersions:
    """The model version of each pipeline this process serves, as a gauge. Ray drops a gauge series that has not
    been set for about two export intervals, so the current versions are set again every few seconds."""

    REPORT_S = 5.0

    def __init__(self) -> None:
        self.gauge = Gauge("tandem_model_version", tag_keys=("pipeline", "version"),
                           description="1 for each model version a replica serves; 0 for one just replaced.")
        self.load_failures = Counter("tandem_model_load_failures", tag_keys=("pipeline", "version"),
                                     description="Attempts to load an active model version that failed; the "
                                                 "version served before goes on serving.")
        self.current: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    def serving(self, pipeline: str, version: str) -> None:
        replaced = self.current.get(pipeline)
        if replaced is not None and replaced != version:
            self.gauge.set(0, tags={"pipeline": pipeline, "version": replaced})
        self.current[pipeline] = version
        self._report()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._report_forever())

    def failed(self, pipeline: str, version: str) -> None:
        self.load_failures.inc(tags={"pipeline": pipeline, "version": version})

    def _report(self) -> None:
        for pipeline, version in self.current.items():
            self.gauge.set(1, tags={"pipeline": pipeline, "version": version})

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self.REPORT_S)
            self._report()


@cache
def served_versions() -> ServedVersions:
    return ServedVersions()


class PipelineTelemetry:
    """ASGI middleware: each request counted and timed under its route's first FastAPI tag (its pipeline).
    Health probes and the page's files are left out; a path no route matches counts as `unrouted`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            pipeline = route.tags[0] if route is not None and getattr(route, "tags", None) else "unrouted"
            if pipeline not in ("health", "web"):
                pipeline_metrics().request(pipeline, status, time.monotonic() - started)
