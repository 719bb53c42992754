"""The page for people at `/`: static files beside the package (deployments/web/, no build step), and what only
the page needs: the pipelines' request counts and latency, read from this node's Prometheus exporter."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import APIRouter
from fastapi.responses import FileResponse
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field

from deployments.http_errors import error_response
from deployments.routes.common import Served, errors

WEB = Path(__file__).resolve().parent.parent / "web"
FILES = {p.name: p for p in WEB.iterdir() if p.is_file()}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}

router = APIRouter()


@router.get("/", include_in_schema=False, tags=["web"])
async def page() -> FileResponse:
    return FileResponse(FILES["index.html"], media_type=TYPES[".html"])


@router.get("/web/{name}", include_in_schema=False, tags=["web"])
async def asset(name: str):
    if name not in FILES:
        return error_response(404, f"no file {name!r} in the page", "not_found_error", "name")
    return FileResponse(FILES[name], media_type=TYPES.get(FILES[name].suffix))


class PipelineTraffic(BaseModel):
    requests: float = Field(description="HTTP requests answered since the replicas started, all statuses.")
    errors: float = Field(description="Of them, answered 5xx.")
    seconds: float = Field(description="Their summed latency; with `requests`, a mean over any interval.")


@router.get("/v1/metrics/pipelines", tags=["health"], response_model=dict[str, PipelineTraffic],
            responses=errors(503),
            summary="Requests, server errors and summed latency per pipeline since start (counters: take "
                    "differences), from this node's Prometheus exporter: what the page's chart draws.")
async def pipeline_traffic(services: Served):
    import ray

    url = f"http://{ray.util.get_node_ip_address()}:{services.settings.metrics_port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(url)).raise_for_status().text
    except httpx.HTTPError as exc:
        return error_response(503, f"the metrics exporter at {url} did not answer: {exc}", "service_unavailable")
    traffic: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            pipeline = s.labels.get("pipeline")
            if pipeline is None:
                continue
            counts = traffic.setdefault(pipeline, {"requests": 0.0, "errors": 0.0, "seconds": 0.0})
            if s.name == "ray_tandem_pipeline_requests_total":
                counts["requests"] += s.value
                counts["errors"] += s.value if s.labels.get("status") == "5xx" else 0.0
            elif s.name == "ray_tandem_pipeline_seconds_sum":
                counts["seconds"] += s.value
    return {p: PipelineTraffic(**c) for p, c in sorted(traffic.items()) if c["requests"]}
