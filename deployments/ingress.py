"""HTTP routes. Routes stay thin: validate, call a deployment through its handle, map result to JSON."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from db import registry
from db.pool import Database
from deployments.answer import answer, generation, retrieve_for, sources, unanswered
from deployments.books import judge_books, recommend_books, search_catalogue
from deployments.books_protocol import (
    BookJudgement,
    BookJudgementRequest,
    BookQuestion,
    BookRecommendationRequest,
    BookRecommendationResponse,
    BookSearchResponse,
    CatalogueSearchRequest,
    QuestionOption,
)
from deployments.calls import call
from deployments.candidates_protocol import CandidateRequest, CandidateResponse
from deployments.health import (
    PARTS,
    DeploymentDown,
    DeploymentStates,
    PipelineReadiness,
    Readiness,
    needs,
    readiness_of,
)
from deployments.http_errors import BodySizeLimit, error_response, install_error_handlers
from deployments.ingestion import router as ingestion_router
from deployments.keywords_protocol import KeywordsRequest, KeywordsResponse
from deployments.openai_protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ErrorBody,
    ErrorResponse,
)
from deployments.recommend import recommend
from deployments.recommend_protocol import RecommendationRequest, RecommendationResponse
from deployments.retriever_protocol import QARequest, QAResponse, RetrieveRequest, RetrieveResponse
from deployments.service_error import ServiceError
from deployments.telemetry import PipelineTelemetry
from deployments.trainer import TrainAccepted, TrainRequest
from models.books.questions import QUESTIONS
from tandem.pipelines import ADAPTERS, PIPELINES
from tandem.settings import Settings

log = logging.getLogger("tandem.ingress")

READY_TIMEOUT_S = 3.0

app = FastAPI(
    title="Tandem",
    description="Two-stage ML pipelines served by Ray Serve from PostgreSQL.",
    version="0.1.0",
)
install_error_handlers(app)
app.add_middleware(BodySizeLimit)
app.add_middleware(PipelineTelemetry)


# Before the ingestion routes, whose GET /v1/books/{external_id} would otherwise take this path.
@app.get("/v1/books/questions", tags=["books"], response_model=list[BookQuestion],
         summary="The five questions of the book recommender, each with example answers.")
async def book_questions() -> list[BookQuestion]:
    return [BookQuestion(key=q.key, text=q.text, examples=[QuestionOption(key=o.key, label=o.label)
                                                           for o in q.options]) for q in QUESTIONS]


app.include_router(ingestion_router)


def service_error_response(error: ServiceError) -> JSONResponse:
    return error_response(error.status, error.message, error.type, error.param)


async def _down(reason: str) -> tuple[None, str]:
    return None, f"not ready: {reason}"


async def _ask(pending) -> tuple[object, str]:
    """A deployment's answer and "ok", or None and why it is not ready."""
    try:
        return await asyncio.wait_for(pending, READY_TIMEOUT_S), "ok"
    except Exception as exc:
        return None, f"not ready: {type(exc).__name__} {exc}".strip()


def answered(result):
    """A deployment's result as the route's answer: a ServiceError becomes its JSON error response."""
    return service_error_response(result) if isinstance(result, ServiceError) else result


# Routing only: no CPU reserved, so the ingress fits beside the models on a small node.
@serve.deployment(name="Ingress", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    async def __init__(
        self, settings: Settings, llm: DeploymentHandle, candidates: DeploymentHandle, trainer: DeploymentHandle,
        retriever: DeploymentHandle, keywords: DeploymentHandle,
    ):
        self.settings = settings
        self.llm = llm
        self.candidates_server = candidates
        self.trainer = trainer
        self.retriever = retriever
        self.keywords = keywords
        self.db = Database(
            settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
        )
        app.state.db = self.db
        self.deployments = DeploymentStates({"llm": llm, "candidates": candidates, "trainer": trainer,
                                             "retriever": retriever, "keywords": keywords})
        self.deployments.start()
        app.state.deployments = self.deployments
        app.state.max_body_bytes = int(settings.max_body_mib * 2**20)
        # Open (and migrate) now when the database is up; when it is down this degrades /readyz and the
        # data routes, which retry on their next request, instead of failing the whole service.
        try:
            await self.db.pool()
        except Exception as exc:
            log.warning("database unreachable at start-up", extra={"error": str(exc)})

    @app.get("/healthz", tags=["health"], summary="Liveness: the HTTP process answers.")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=Readiness,
             summary="Readiness of every part and pipeline; 200 only when all are ready.")
    async def readyz(self) -> JSONResponse:
        body = await self._readiness()
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)

    @app.get("/readyz/{pipeline}", tags=["health"], response_model=PipelineReadiness,
             responses={404: {"model": ErrorResponse}},
             summary="One pipeline's readiness: 200 when it answers (ready, or degraded and flagged), else 503.")
    async def pipeline_readyz(self, pipeline: str) -> JSONResponse:
        if pipeline not in PIPELINES:
            return error_response(404, f"no pipeline {pipeline!r}; pipelines: {', '.join(PIPELINES)}",
                                  "not_found_error", "pipeline")
        # Only its own parts are checked: a stuck LLM does not slow the keyword pipeline's probe.
        checks, _ = await self._checks(PIPELINES[pipeline].parts())
        state = readiness_of(PIPELINES[pipeline], checks)
        return JSONResponse(state.model_dump(), status_code=503 if state.status == "unavailable" else 200)

    async def _checks(self, parts: set[str]) -> tuple[dict[str, str], dict[str, object]]:
        """"ok" or why not for each of `parts`, and what the deployments asked answered."""
        checks: dict[str, str] = {}
        if "database" in parts:
            try:
                await self.db.ping(timeout=READY_TIMEOUT_S)
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"unreachable: {exc}"
        if "trainer" in parts:
            checks["trainer"] = self.deployments.problem("trainer") or "ok"
        # A deployment the controller reports down is not asked (the call would wait for a replica); the others
        # are asked at once, so a stuck one costs one timeout, not one each.
        calls = {name: method for name, method in (
            ("llm", self.llm.adapter_versions), ("candidates", self.candidates_server.active_version),
            ("retriever", self.retriever.status), ("keywords", self.keywords.active_version)) if name in parts}
        asked = dict(zip(calls, await asyncio.gather(*(
            _down(reason) if (reason := self.deployments.problem(name)) else _ask(method.remote())
            for name, method in calls.items())), strict=True))
        checks |= {name: state for name, (_, state) in asked.items()}
        return checks, {name: answer for name, (answer, _) in asked.items()}

    async def _readiness(self) -> Readiness:
        checks, answers = await self._checks(set(PARTS))
        status = answers["retriever"]
        models = {name: (answers["llm"] or {}).get(name) for name in ADAPTERS}
        # A pipeline without a trained model yet is reported, not "not ready": the rest of the service works.
        models |= {"lrurec": answers["candidates"], "kobart": answers["keywords"],
                   "index": status.pop("index") if status else None}
        pipelines = {name: readiness_of(p, checks) for name, p in PIPELINES.items()}
        return Readiness(status="ready" if all(v == "ok" for v in checks.values()) else "not ready", checks=checks,
                         pipelines=pipelines, models=models, retrieval=status)

    @app.post(
        "/v1/candidates",
        tags=["candidates"], dependencies=[needs("candidates")],
        response_model=CandidateResponse,
        responses={code: {"model": ErrorResponse} for code in (404, 422, 503)},
        summary="LRURec top-k candidates for a user id or an explicit history, the history excluded.",
    )
    async def candidates(self, request: CandidateRequest):
        return answered(await call(self.candidates_server.candidates, request))

    @app.post(
        "/v1/recommendations",
        tags=["recommendation"], dependencies=[needs("candidates")],
        response_model=RecommendationResponse,
        responses={code: {"model": ErrorResponse} for code in (404, 422, 503)},
        summary="LRURec candidates reordered by the LLM verbalizer (the `ranker` adapter); LRURec's order, "
                "flagged, when the LLM stage fails or runs out of time.",
    )
    async def recommendations(self, request: RecommendationRequest):
        return answered(await recommend(request, self.settings, self.db, self.candidates_server, self.llm,
                                        llm_down=self.deployments.problem("llm")))

    @app.post(
        "/v1/retrieve",
        tags=["retrieval"], dependencies=[needs("retriever")],
        response_model=RetrieveResponse,
        responses={code: {"model": ErrorResponse} for code in (422, 503)},
        summary="Passages for a query: dense (DPR + FAISS), sparse (BM25) or hybrid (reciprocal-rank fusion).",
    )
    async def retrieve(self, request: RetrieveRequest):
        if request.expand_keywords and (reason := self.deployments.problem("keywords")) is not None:
            raise DeploymentDown("keywords", reason)
        # The keywords' response goes to the retriever unawaited: Serve hands it the result, not this replica.
        keywords = self.keywords.extract.remote(KeywordsRequest(text=request.query)) if request.expand_keywords \
            else None
        return answered(await call(self.retriever.retrieve, request, keywords))

    @app.post(
        "/v1/keywords",
        tags=["keywords"], dependencies=[needs("keywords")],
        response_model=KeywordsResponse,
        responses={code: {"model": ErrorResponse} for code in (422, 503)},
        summary="Keywords of a text (`text`) or of up to 64 (`texts`), by the fine-tuned KoBART in one batched "
                "beam search, or by the morphological analyser until a model is trained (`model` says which).",
    )
    async def keywords_route(self, request: KeywordsRequest):
        return answered(await call(self.keywords.extract, request))

    @app.post(
        "/v1/qa",
        tags=["qa"], dependencies=[needs("retriever", "llm")],
        response_model=QAResponse,
        responses={code: {"model": ErrorResponse} for code in (400, 422, 503)},
        summary="Answer a question from retrieved passages with the `qa` adapter; `stream: true` for events "
                "(passages first, then the answer's text, then the model used).",
    )
    async def qa(self, request: QARequest):
        try:
            if request.stream:
                return await self._qa_events(request)
            result = await asyncio.wait_for(answer(request, self.settings, self.retriever, self.llm),
                                            timeout=self.settings.qa_timeout_s)
        except asyncio.TimeoutError:
            return error_response(503, f"answering took longer than {self.settings.qa_timeout_s:g} s",
                                  "service_unavailable")
        return answered(result)

    async def _qa_events(self, request: QARequest):
        retrieved = await retrieve_for(request, self.settings, self.retriever)
        if isinstance(retrieved, ServiceError):
            return service_error_response(retrieved)
        found, relevant = retrieved

        async def events() -> AsyncIterator[str]:
            if not relevant:
                yield f"data: {unanswered(request, found).model_dump_json()}\n\n"
                yield "data: [DONE]\n\n"
                return
            yield "data: " + json.dumps({"passages": [p.model_dump() for p in relevant], "mode": found.mode,
                                         "fallback": found.fallback}, ensure_ascii=False) + "\n\n"
            async for piece in generation(request, relevant, self.llm):
                if isinstance(piece, ServiceError):
                    error = ErrorResponse(error=ErrorBody(message=piece.message, type=piece.type))
                    yield f"data: {error.model_dump_json()}\n\n"
                    break
                if piece.finished:
                    used = relevant[: piece.passages_used]
                    yield "data: " + json.dumps({"model": piece.model, "adapter_version": piece.adapter_version,
                                                 "sources": sources(used), "passages_used": len(used),
                                                 "completion_tokens": piece.completion_tokens},
                                                ensure_ascii=False) + "\n\n"
                else:
                    yield "data: " + json.dumps({"text": piece.text}, ensure_ascii=False) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post(
        "/v1/books/search",
        tags=["books"], dependencies=[needs("retriever")],
        response_model=BookSearchResponse,
        responses={code: {"model": ErrorResponse} for code in (404, 422, 503)},
        summary="Catalogue books for a query (dense + BM25); with `user_id`, never a book the user read or one "
                "on a topic they avoid.",
    )
    async def book_search(self, request: CatalogueSearchRequest):
        return answered(await search_catalogue(request, self.db, self.retriever))

    @app.post(
        "/v1/books/recommendations",
        tags=["books"], dependencies=[needs("retriever")],
        response_model=BookRecommendationResponse,
        responses={code: {"model": ErrorResponse} for code in (404, 422, 503)},
        summary="n catalogue books for the five answers (and a user's reading life), chosen by the LLM among "
                "retrieved candidates with a reason each; never a book read or one on an avoided topic.",
    )
    async def book_recommendations(self, request: BookRecommendationRequest):
        return answered(await recommend_books(request, self.settings, self.db, self.retriever, self.llm,
                                              llm_down=self.deployments.problem("llm")))

    @app.post(
        "/v1/books/judgements",
        tags=["books"], dependencies=[needs("llm")],
        response_model=BookJudgement,
        responses={code: {"model": ErrorResponse} for code in (404, 422, 502, 503)},
        summary="Score a book recommendation 0-5 against a fixed rubric, by the LLM in a separate call "
                "(the seed project's evaluation).",
    )
    async def book_judgements(self, request: BookJudgementRequest):
        try:
            return answered(await judge_books(request, self.settings, self.db, self.llm))
        except asyncio.TimeoutError:
            return error_response(503, f"judging took longer than {self.settings.books_timeout_s:g} s",
                                  "service_unavailable")

    @app.post(
        "/v1/train",
        tags=["training"], dependencies=[needs("trainer")],
        status_code=202,
        response_model=TrainAccepted,
        responses={code: {"model": ErrorResponse} for code in (409, 422, 503)},
        summary="Retrain from the current database without blocking serving; poll GET /v1/train/{id}.",
    )
    async def train(self, request: TrainRequest):
        return answered(await self.trainer.submit.remote(request))

    @app.get(
        "/v1/train/{run_id}",
        tags=["training"],
        response_model=registry.TrainingRun,
        responses={404: {"model": ErrorResponse}},
        summary="A training run: status (queued, running, succeeded, failed), progress, metrics, error.",
    )
    async def train_status(self, run_id: int):
        async with self.db.acquire() as conn:
            run = await registry.get_run(conn, run_id)
        if run is None:
            return error_response(404, f"no training run {run_id}", "not_found_error", "run_id")
        return run

    @app.get("/v1/models", tags=["llm"], dependencies=[needs("llm")],
             summary="Models served, OpenAI shape: the base model and `base:adapter` for each adapter.")
    async def models(self) -> dict:
        names = await call(self.llm.models)
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tandem"} for n in names]}

    @app.post(
        "/v1/chat/completions",
        tags=["llm"], dependencies=[needs("llm")],
        response_model=ChatCompletionResponse,
        responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
        summary="OpenAI-compatible chat completion with the model's chat template; `stream: true` for events.",
    )
    async def chat_completions(self, request: ChatCompletionRequest):
        if request.stream:
            return await self._events(self.llm.options(stream=True).chat_stream.remote(request))
        return answered(await call(self.llm.chat, request))

    @app.post(
        "/v1/completions",
        tags=["llm"], dependencies=[needs("llm")],
        response_model=CompletionResponse,
        responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
        summary="OpenAI-compatible text completion; `stream: true` returns server-sent events.",
    )
    async def completions(self, request: CompletionRequest):
        if request.stream:
            return await self._events(self.llm.options(stream=True).completions_stream.remote(request))
        return answered(await call(self.llm.completions, request))

    async def _events(self, chunks):
        """Server-sent events from a streaming handle call."""
        # Look at the first chunk before answering, so a rejected request still gets its 4xx status.
        first = await chunks.__anext__()
        if isinstance(first, ServiceError):
            return service_error_response(first)

        async def events() -> AsyncIterator[str]:
            yield f"data: {first.model_dump_json()}\n\n"
            async for chunk in chunks:
                if isinstance(chunk, ServiceError):
                    error = ErrorResponse(error=ErrorBody(message=chunk.message, type=chunk.type))
                    yield f"data: {error.model_dump_json()}\n\n"
                    break
                yield f"data: {chunk.model_dump_json()}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
