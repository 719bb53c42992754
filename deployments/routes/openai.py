"""The OpenAI-compatible routes of the LLM: models, completions and chat completions, streamed or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

from fastapi import APIRouter
from ray.serve.handle import DeploymentResponseGenerator

from deployments.http_errors import error_body, error_response
from deployments.pipelines.calls import call
from deployments.pipelines.services import Services
from deployments.protocol.openai import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
)
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

router = APIRouter(prefix="/v1", tags=["llm"], dependencies=[allowed("inference"), needs("llm")],
                   responses=errors(401, 403))


@router.get("/models", summary="Models served, OpenAI shape: the base model and `base:adapter` for each adapter.")
async def models(services: Served) -> dict:
    names = await call(services.llm.models)
    return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tandem"} for n in names]}


@router.post("/chat/completions", response_model=ChatCompletionResponse,
             responses=errors(400, 404, 422, 504) | STREAMED,
             summary="OpenAI-compatible chat completion with the model's chat template; `stream: true` for events.")
async def chat_completions(request: ChatCompletionRequest, services: Served):
    if request.stream:
        return await events_of(services.llm.options(stream=True).chat_stream.remote(request), services)
    return await within_deadline(call(services.llm.chat, request), services)


@router.post("/completions", response_model=CompletionResponse, responses=errors(400, 404, 422, 504) | STREAMED,
             summary="OpenAI-compatible text completion; `stream: true` returns server-sent events.")
async def completions(request: CompletionRequest, services: Served):
    if request.stream:
        return await events_of(services.llm.options(stream=True).completions_stream.remote(request), services)
    return await within_deadline(call(services.llm.completions, request), services)


def past_deadline(services: Services) -> str:
    return (f"the LLM took longer than {services.settings.llm_request_timeout_s:g} s (TANDEM_LLM_REQUEST_TIMEOUT_S); "
            "its work was stopped")


async def within_deadline(work: Awaitable, services: Services):
    """The answer, or 504 past the deadline. Cancelling the handle call cancels the request in the LLM replica,
    and vLLM aborts a cancelled request: its slot in the batch goes to the next one."""
    try:
        return answered(await asyncio.wait_for(work, services.settings.llm_request_timeout_s))
    except asyncio.TimeoutError:
        return error_response(504, past_deadline(services), "timeout")


async def events_of(chunks: DeploymentResponseGenerator, services: Services):
    """Server-sent events from a streaming handle call, ended (and the engine request stopped) at the deadline or
    when the client goes away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + services.settings.llm_request_timeout_s

    async def next_chunk():
        # Per chunk, not around the generator below: a timeout must not fire while it waits at a `yield`.
        return await asyncio.wait_for(chunks.__anext__(), max(deadline - loop.time(), 0))

    # Look at the first chunk before answering, so a rejected request still gets its 4xx status.
    try:
        first = await next_chunk()
    except TimeoutError:
        chunks.cancel()
        return error_response(504, past_deadline(services), "timeout")
    if isinstance(first, ServiceError):
        return service_error_response(first)

    async def events() -> AsyncIterator[str]:
        chunk = first
        try:
            while not isinstance(chunk, ServiceError):
                yield f"data: {chunk.model_dump_json()}\n\n"
                chunk = await next_chunk()
            yield f"data: {error_body(chunk.message, chunk.type, chunk.param).model_dump_json()}\n\n"
        except StopAsyncIteration:
            pass
        except TimeoutError:
            yield f"data: {error_body(past_deadline(services), 'timeout').model_dump_json()}\n\n"
        finally:  # the deadline, or a client that went away (the response is cancelled): stop the engine's work
            chunks.cancel()
        yield "data: [DONE]\n\n"

    return EventStream(events())
