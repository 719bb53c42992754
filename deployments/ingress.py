"""The HTTP ingress: one FastAPI app that mounts a router per pipeline (deployments/routes/) and holds the handles
of the model deployments for them."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from db.pool import Database
from deployments.admission import Admission
from deployments.auth import KeyRing
from deployments.health import DeploymentStates
from deployments.http_errors import BodySizeLimit, JsonBodies, RequestIds, document_errors, install_error_handlers
from deployments.pipelines.llm_prompts import LLMPrompts
from deployments.pipelines.services import Services
from deployments.routes import (
    api_keys,
    books,
    health,
    ingestion,
    keywords,
    model_versions,
    openai,
    recommendations,
    retrieval,
    training,
    web,
)
from deployments.telemetry import PipelineTelemetry, replica_logs
from tandem.settings import Settings

log = logging.getLogger("tandem.ingress")

app = FastAPI(
    title="Tandem",
    description="Two-stage ML pipelines served by Ray Serve from PostgreSQL.",
    version="0.1.0",
)
install_error_handlers(app)
app.add_middleware(BodySizeLimit)
app.add_middleware(JsonBodies)
app.add_middleware(PipelineTelemetry)
app.add_middleware(Admission)
app.add_middleware(RequestIds)
# The books router first: ingestion's GET /v1/books/{external_id} would otherwise take /v1/books/questions.
for router in (health.router, books.router, ingestion.router, recommendations.router, retrieval.router, keywords.router,
               training.router, model_versions.router, openai.router, api_keys.router, web.router):
    app.include_router(router)
document_errors(app)


# Routing only: no CPU reserved, so the ingress fits beside the models on a small node.
@serve.deployment(name="Ingress", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    async def __init__(
        self, settings: Settings, llm: DeploymentHandle, candidates: DeploymentHandle, trainer: DeploymentHandle,
        retriever: DeploymentHandle, keywords: DeploymentHandle,
    ):
        replica_logs()
        db = Database(settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size)
        states = DeploymentStates({"llm": llm, "candidates": candidates, "trainer": trainer, "retriever": retriever,
                                   "keywords": keywords})
        states.start()
        self.services = Services(settings=settings, db=db, keys=KeyRing(settings, db), deployments=states,
                                 prompts=LLMPrompts(settings), llm=llm, candidates=candidates, trainer=trainer,
                                 retriever=retriever, keywords=keywords)
        self.max_body_bytes = int(settings.max_body_mib * 2**20)  # read by BodySizeLimit
        self.max_ongoing = settings.ingress_max_ongoing_requests  # read by Admission
        self.route_limits = settings.route_max_ongoing_requests  # read by Admission
        # Open (and migrate) now when the database is up; when it is down this degrades /readyz and the
        # data routes, which retry on their next request, instead of failing the whole service.
        try:
            await db.pool()
        except Exception as exc:
            log.warning("database unreachable at start-up", extra={"error": str(exc)})
