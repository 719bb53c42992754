"""The QA pipeline: retrieve passages, keep the relevant ones, and let the LLM (the `qa` adapter) answer
from them. With no relevant passage the LLM is not asked and the answer says so."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ray.serve.handle import DeploymentHandle

from deployments.calls import call
from deployments.retriever_protocol import (
    QAGeneration,
    QAPrompt,
    QARequest,
    QAResponse,
    RetrievedPassage,
    RetrieveRequest,
    RetrieveResponse,
)
from deployments.service_error import ServiceError
from deployments.telemetry import pipeline_metrics
from models.qa.prompts import NO_ANSWER
from tandem.settings import Settings

PIPELINE = "qa"


def is_relevant(passage: RetrievedPassage, min_dense_score: float | None) -> bool:
    """A passage is relevant when it shares a content term with the question (a BM25 hit), or, when a
    threshold is set, when its dense score reaches it."""
    if passage.sparse_score is not None and passage.sparse_score > 0:
        return True
    return min_dense_score is not None and passage.dense_score is not None and passage.dense_score >= min_dense_score


def sources(passages: list[RetrievedPassage]) -> list[str]:
    return list(dict.fromkeys(p.source or p.title for p in passages))


async def retrieve_for(request: QARequest, settings: Settings, retriever: DeploymentHandle,
                       ) -> tuple[RetrieveResponse, list[RetrievedPassage]] | ServiceError:
    metrics = pipeline_metrics()
    found = await metrics.timed(PIPELINE, "retrieval", call(retriever.retrieve,
        RetrieveRequest(query=request.question, top_k=request.top_k, mode=request.mode)))
    if isinstance(found, ServiceError):
        return found
    if found.fallback:
        metrics.fallback(PIPELINE, "retrieval")
    return found, [p for p in found.passages if is_relevant(p, settings.qa_min_dense_score)]


def unanswered(request: QARequest, found: RetrieveResponse) -> QAResponse:
    return QAResponse(question=request.question, answer=NO_ANSWER, answered=False, passages=[], sources=[],
                      model=None, adapter_version=None, mode=found.mode, fallback=found.fallback)


def generation(request: QARequest, passages: list[RetrievedPassage], llm: DeploymentHandle,
               ) -> AsyncIterator[QAGeneration | ServiceError]:
    prompt = QAPrompt(question=request.question, passages=passages, max_tokens=request.max_tokens)
    return pipeline_metrics().timed_stream(PIPELINE, "generation", llm.options(stream=True).answer.remote(prompt))


async def answer(request: QARequest, settings: Settings, retriever: DeploymentHandle,
                 llm: DeploymentHandle) -> QAResponse | ServiceError:
    retrieved = await retrieve_for(request, settings, retriever)
    if isinstance(retrieved, ServiceError):
        return retrieved
    found, relevant = retrieved
    if not relevant:
        return unanswered(request, found)
    text, last = [], None
    async for piece in generation(request, relevant, llm):
        if isinstance(piece, ServiceError):
            return piece
        text.append(piece.text)
        last = piece
    used = relevant[: last.passages_used]
    return QAResponse(question=request.question, answer="".join(text).strip(), answered=True, passages=used,
                      sources=sources(used), model=last.model, adapter_version=last.adapter_version,
                      mode=found.mode, fallback=found.fallback)
