"""The OpenAI API: models, completions and chat completions answered by vLLM's own serving layer in the LLM
deployment (the request's JSON is forwarded as sent), and embeddings from the active DPR encoders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from deployments.http_errors import OPENAI_TAG, error_body, error_response
from deployments.pipelines.calls import call, streamed
from deployments.pipelines.services import Services
from deployments.protocol.llm import OpenAIAnswer
from deployments.protocol.retrieval import EmbeddingRequest, EmbeddingResponse
from deployments.protocol.service_error import ServiceError
from deployments.routes.common import STREAMED, EventStream, Served, allowed, answered, errors, needs

router = APIRouter(prefix="/v1", tags=[OPENAI_TAG], dependencies=[allowed("inference")], responses=errors(401, 403))

OPENAI_BODY = Body(description="The request as OpenAI's API reference describes it, with vLLM's extra sampling "
                               "fields; validated by vLLM's own protocol models.",
                   openapi_examples={"greedy": {"value": {"prompt": "The capital of France is", "max_tokens": 8,
                                                          "temperature": 0}}})


@router.get("/models", dependencies=[needs("llm")],
            summary="The base model and, as `base:adapter` with the base as parent, each LoRA adapter served.")
async def models(services: Served) -> dict:
    return await call(services.llm.openai_models)


@router.post("/completions", dependencies=[needs("llm")], responses=errors(400, 404, 504) | STREAMED,
             summary="OpenAI completions (vLLM's serving layer); `stream: true` answers with server-sent events.")
async def completions(services: Served, body: dict[str, Any] = OPENAI_BODY):
    return await answer_from_llm(services, "completions", body)


@router.post("/chat/completions", dependencies=[needs("llm")], responses=errors(400, 404, 504) | STREAMED,
             summary="OpenAI chat completions with the model's chat template (vLLM's serving layer); "
                     "`stream: true` answers with server-sent events.")
async def chat_completions(services: Served, body: dict[str, Any] = OPENAI_BODY):
    return await answer_from_llm(services, "chat/completions", body)


@router.post("/embeddings", dependencies=[needs("retriever")], response_model=EmbeddingResponse,
             responses=errors(400, 404, 503),
             summary="OpenAI embeddings from the active DPR encoders: `dpr-question` or `dpr-passage`, the vectors "
                     "the retriever searches with.")
async def embeddings(request: EmbeddingRequest, services: Served):
    return answered(await call(services.retriever.embed, request))


def past_deadline(services: Services) -> str:
    return (f"the LLM took longer than {services.settings.llm_request_timeout_s:g} s (TANDEM_LLM_REQUEST_TIMEOUT_S); "
            "its work was stopped")


async def answer_from_llm(services: Services, route: str, body: dict[str, Any]):
    """The LLM deployment's answer: JSON, an error with its status, or server-sent events. Past the deadline, or
    when the client goes away, the call is cancelled in the replica and vLLM aborts the request."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + services.settings.llm_request_timeout_s
    items = streamed(services.llm.options(stream=True).openai.remote(route, body))

    async def next_item():
        # Per item, not around the generator below: a timeout must not fire while it waits at a `yield`. A
        # timeout scope, not `wait_for`, which would start a task for every streamed event.
        async with asyncio.timeout_at(deadline):
            return await anext(items)

    try:
        first: OpenAIAnswer | ServiceError = await next_item()
    except TimeoutError:
        await items.aclose()
        return error_response(504, past_deadline(services), "timeout")
    if isinstance(first, ServiceError) or first.body is not None:
        await items.aclose()
        return answered(first) if isinstance(first, ServiceError) else JSONResponse(first.body)

    async def events() -> AsyncIterator[str]:
        try:
            while True:
                yield await next_item()
        except StopAsyncIteration:
            pass
        except TimeoutError:
            yield f"data: {error_body(past_deadline(services), 'timeout').model_dump_json()}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            await items.aclose()

    return EventStream(events())
