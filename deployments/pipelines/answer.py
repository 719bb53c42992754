"""The QA pipeline: retrieve passages, keep the relevant ones, and let the LLM (the `qa` adapter) answer
from them. With no relevant passage the LLM is not asked and the answer says so.

`answer_events` is the pipeline; `POST /v1/qa` either streams its events or collects them with `answer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from deployments.pipelines.calls import call, streamed
from deployments.pipelines.services import Services
from deployments.protocol.llm import Generate, Generated
from deployments.protocol.retrieval import QARequest, QAResponse, RetrievedPassage, RetrieveRequest, RetrieveResponse
from deployments.protocol.service_error import ServiceError
from deployments.telemetry import pipeline_metrics
from models.qa.prompts import NO_ANSWER, Context

PIPELINE = "qa"
ADAPTER = "qa"


def is_relevant(passage: RetrievedPassage, min_dense_score: float | None) -> bool:
    """A passage is relevant when it shares a content term with the question (a BM25 hit), or, when a
    threshold is set, when its dense score reaches it."""
    if passage.sparse_score is not None and passage.sparse_score > 0:
        return True
    return min_dense_score is not None and passage.dense_score is not None and passage.dense_score >= min_dense_score


def sources(passages: list[RetrievedPassage]) -> list[str]:
    return list(dict.fromkeys(p.source or p.title for p in passages))


@dataclass(frozen=True)
class Retrieved:
    """The first event: what retrieval found, and the passages relevant enough to answer from."""

    found: RetrieveResponse
    relevant: list[RetrievedPassage]


@dataclass(frozen=True)
class Answered:
    """The last event of an answer: who wrote it from which passages (those that fitted the prompt)."""

    model: str
    adapter_version: str | None
    passages: list[RetrievedPassage]
    completion_tokens: int


QAEvent = Retrieved | str | Answered | ServiceError  # a str is a piece of the answer's text


async def answer_events(request: QARequest, services: Services) -> AsyncIterator[QAEvent]:
    """`Retrieved`, then (when a passage is relevant) the answer's text in pieces and `Answered`; a
    `ServiceError` ends the events where it happens."""
    metrics = pipeline_metrics()
    found = await metrics.timed(PIPELINE, "retrieval", call(services.retriever.retrieve,
        RetrieveRequest(query=request.question, top_k=request.top_k, mode=request.mode)))
    if isinstance(found, ServiceError):
        yield found
        return
    if found.fallback:
        metrics.fallback(PIPELINE, "retrieval")
    relevant = [p for p in found.passages if is_relevant(p, services.settings.qa_min_dense_score)]
    yield Retrieved(found, relevant)
    if not relevant:
        return
    prompt, used = services.prompts.qa.prompt_ids(request.question, [Context(p.text, p.source) for p in relevant])
    pieces = streamed(services.llm.options(stream=True).generate_stream.remote(
        Generate(prompt=prompt, max_tokens=request.max_tokens, adapter=ADAPTER, kind="answer")))
    piece: Generated | ServiceError
    async with aclosing(pieces):  # closed early (a client gone, a deadline): the generation stops
        async for piece in metrics.timed_stream(PIPELINE, "generation", pieces):
            if isinstance(piece, ServiceError):
                yield piece
                return
            if piece.finished:
                yield Answered(piece.model, piece.adapter_version, relevant[:used], piece.completion_tokens)
            elif piece.text:
                yield piece.text


def unanswered(request: QARequest, found: RetrieveResponse) -> QAResponse:
    return QAResponse(question=request.question, answer=NO_ANSWER, answered=False, passages=[], sources=[],
                      model=None, adapter_version=None, mode=found.mode, fallback=found.fallback)


async def answer(request: QARequest, services: Services) -> QAResponse | ServiceError:
    text, retrieved = [], None
    async for event in answer_events(request, services):
        if isinstance(event, ServiceError):
            return event
        if isinstance(event, Retrieved):
            retrieved = event
        elif isinstance(event, str):
            text.append(event)
        else:
            return QAResponse(question=request.question, answer="".join(text).strip(), answered=True,
                              passages=event.passages, sources=sources(event.passages), model=event.model,
                              adapter_version=event.adapter_version, mode=retrieved.found.mode,
                              fallback=retrieved.found.fallback)
    return unanswered(request, retrieved.found)
