"""The OpenAI-compatible routes of the LLM: models, completions and chat completions, streamed or not."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from deployments.pipelines.calls import call
from deployments.protocol.openai import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ErrorBody,
    ErrorResponse,
)
from deployments.protocol.service_error import ServiceError
from deployments.routes.common import Served, answered, errors, needs, service_error_response

router = APIRouter(prefix="/v1", tags=["llm"], dependencies=[needs("llm")])


@router.get("/models", summary="Models served, OpenAI shape: the base model and `base:adapter` for each adapter.")
async def models(services: Served) -> dict:
    names = await call(services.llm.models)
    return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tandem"} for n in names]}


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=errors(400, 404, 422),
             summary="OpenAI-compatible chat completion with the model's chat template; `stream: true` for events.")
async def chat_completions(request: ChatCompletionRequest, services: Served):
    if request.stream:
        return await events_of(services.llm.options(stream=True).chat_stream.remote(request))
    return answered(await call(services.llm.chat, request))


@router.post("/completions", response_model=CompletionResponse, responses=errors(400, 404, 422),
             summary="OpenAI-compatible text completion; `stream: true` returns server-sent events.")
async def completions(request: CompletionRequest, services: Served):
    if request.stream:
        return await events_of(services.llm.options(stream=True).completions_stream.remote(request))
    return answered(await call(services.llm.completions, request))


async def events_of(chunks):
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
