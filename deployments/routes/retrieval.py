"""Retrieval and question answering over the passage collection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import APIRouter

from deployments.health import DeploymentDown
from deployments.http_errors import error_body, error_response
from deployments.pipelines.answer import Answered, answer, answer_events, sources, unanswered
from deployments.pipelines.calls import call
from deployments.pipelines.services import Services
from deployments.protocol.keywords import KeywordsRequest
from deployments.protocol.retrieval import QARequest, QAResponse, RetrieveRequest, RetrieveResponse
from deployments.protocol.service_error import ServiceError
from deployments.routes.common import (
    STREAMED,
    EventStream,
    Served,
    allowed,
    answered,
    errors,
    needs,
    service_error_response,
)

router = APIRouter(prefix="/v1", dependencies=[allowed("inference")], responses=errors(401, 403))


@router.post("/retrieve", tags=["retrieval"], dependencies=[needs("retriever")],
             response_model=RetrieveResponse, responses=errors(422, 503),
             summary="Passages for a query: dense (DPR + FAISS), sparse (BM25) or hybrid (reciprocal-rank fusion).")
async def retrieve(request: RetrieveRequest, services: Served):
    if request.expand_keywords and (reason := services.deployments.problem("keywords")) is not None:
        raise DeploymentDown("keywords", reason)
    # The keywords' response goes to the retriever unawaited: Serve hands it the result, not this replica.
    keywords = services.keywords.extract.remote(KeywordsRequest(text=request.query)) if request.expand_keywords \
        else None
    return answered(await call(services.retriever.retrieve, request, keywords))


@router.post("/qa", tags=["qa"], dependencies=[needs("retriever", "llm")],
             response_model=QAResponse, responses=errors(400, 422, 503) | STREAMED,
             summary="Answer a question from retrieved passages with the `qa` adapter; `stream: true` for events "
                     "(passages first, then the answer's text, then the model used).")
async def qa(request: QARequest, services: Served):
    settings = services.settings
    try:
        if request.stream:
            return await qa_events(request, services)
        result = await asyncio.wait_for(answer(request, services), timeout=settings.qa_timeout_s)
    except asyncio.TimeoutError:
        return error_response(503, f"answering took longer than {settings.qa_timeout_s:g} s", "service_unavailable")
    return answered(result)


def event(body: dict) -> str:
    return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"


async def qa_events(request: QARequest, services: Services):
    """The answer as server-sent events; a retrieval failure is an HTTP error, before any event."""
    events = answer_events(request, services)
    retrieved = await anext(events)
    if isinstance(retrieved, ServiceError):
        return service_error_response(retrieved)

    async def stream() -> AsyncIterator[str]:
        found = retrieved.found
        async with aclosing(events):  # this stream closed early closes the answer's, which stops the generation
            if not retrieved.relevant:
                yield f"data: {unanswered(request, found).model_dump_json()}\n\n"
            else:
                yield event({"passages": [p.model_dump() for p in retrieved.relevant], "mode": found.mode,
                             "fallback": found.fallback})
                async for piece in events:
                    if isinstance(piece, ServiceError):
                        error = error_body(piece.message, piece.type, piece.param)
                        yield f"data: {error.model_dump_json()}\n\n"
                    elif isinstance(piece, Answered):
                        yield event({"model": piece.model, "adapter_version": piece.adapter_version,
                                     "sources": sources(piece.passages), "passages_used": len(piece.passages),
                                     "completion_tokens": piece.completion_tokens})
                    else:
                        yield event({"text": piece})
        yield "data: [DONE]\n\n"

    return EventStream(stream())
