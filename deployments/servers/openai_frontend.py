"""vLLM's own OpenAI serving layer (the classes under `vllm serve`) over a replica's engine.

The ingress forwards the request's JSON as the client sent it; vLLM's protocol models validate it and its serving
classes render the prompt (chat template, content parts, roles), build the sampling parameters (n, stop, seed,
logprobs, structured outputs for `response_format`) and shape responses and stream chunks as `vllm serve` does.
What this module adds: the adapters the replica serves now, as `base:adapter` models; generations that take
their turn on the cores with the replica's other engines; answers and errors as values that cross the handle.
Imported inside the LLM deployment only: vLLM's protocol modules import torch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.chat_completion.serving import OpenAIServingChat
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
from vllm.entrypoints.openai.models.protocol import BaseModelPath
from vllm.entrypoints.openai.models.serving import OpenAIServingModels
from vllm.entrypoints.serve.engine.protocol import ErrorResponse
from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
from vllm.exceptions import VLLMClientError
from vllm.renderers.online_renderer import OnlineRenderer

from deployments.protocol.llm import OpenAIAnswer
from deployments.protocol.service_error import ServiceError

if TYPE_CHECKING:
    from deployments.servers.llm_engine import LLMEngine

Route = Literal["completions", "chat/completions"]

# OpenAI's error types for the statuses vLLM answers with (vLLM names them after its exception classes).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


def service_error(status: int, message: str, param: str | None = None) -> ServiceError:
    return ServiceError(status=status, message=message, param=param,
                        type=ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"))


def from_vllm(error: ErrorResponse) -> ServiceError:
    return service_error(error.error.code, error.error.message, error.error.param)


def invalid(exc: ValidationError) -> ServiceError:
    """One sentence per problem, naming the field, as the ingress words its own validation errors."""
    problems, fields = [], []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "body"
        fields.append(field)
        problems.append(f"{field}: {err['msg']}")
    return service_error(400, "; ".join(problems), fields[0] if fields else None)


class TakingTurns:
    """The engine as the serving classes use it, except that each generation first waits for its engine's turn
    on the cores and is aborted in the engine however its consumer stops reading (`LLMEngine.generate`)."""

    def __init__(self, engine: LLMEngine):
        self._engine = engine
        self.generate = engine.generate

    def __getattr__(self, name: str):
        return getattr(self._engine.engine, name)


class ServedModels(OpenAIServingModels):
    """The base model and, as `base:adapter` with the base as parent, each adapter the engine serves now: the
    engine's own table (`LLMEngine.adapters`), which changes when a new version is activated, not a copy."""

    def __init__(self, engine: LLMEngine, client: TakingTurns, model_path: str):
        self._engine = engine
        super().__init__(client, [BaseModelPath(name=engine.model_name, model_path=model_path)])

    @property
    def lora_requests(self) -> dict:
        return {request.lora_name: request for request in self._engine.adapters.values()}

    @lora_requests.setter
    def lora_requests(self, _: dict) -> None:
        """The parent's constructor starts an empty table; adapters are loaded through the engine, not here."""


class OpenAIFrontend:
    def __init__(self, engine: LLMEngine, model_path: str):
        client = TakingTurns(engine)
        self.models = ServedModels(engine, client, model_path)
        renderer = OnlineRenderer(client.model_config, client.renderer, request_logger=None, chat_template=None,
                                  chat_template_content_format="auto")
        renderer.warmup()
        self.completions = OpenAIServingCompletion(client, self.models, online_renderer=renderer,
                                                   request_logger=None)
        self.chat = OpenAIServingChat(client, self.models, "assistant", online_renderer=renderer,
                                      request_logger=None, chat_template=None, chat_template_content_format="auto")
        # A template that never mentions tools would drop them silently and the model would answer as if none
        # were given.
        self.takes_tools = "tools" in (engine.tokenizer.chat_template or "")

    async def model_list(self) -> dict:
        return (await self.models.show_available_models()).model_dump(mode="json")

    async def answer(self, route: Route, body: dict) -> AsyncIterator[OpenAIAnswer | ServiceError | str]:
        """First an `OpenAIAnswer` (the whole JSON answer, or none when server-sent events follow) or a
        `ServiceError`; then, for a stream, its events (`data: …` lines), the last `data: [DONE]`."""
        try:
            if route == "completions":
                request = CompletionRequest.model_validate(body)
                result = await self.completions.create_completion(request)
            else:
                request = ChatCompletionRequest.model_validate(body)
                if request.tools and not self.takes_tools:
                    yield service_error(400, f"tools: the chat template of {self.models.model_name()} does not "
                                        "take tools; send the request without them", "tools")
                    return
                result = await self.chat.create_chat_completion(request)
        except ValidationError as exc:
            yield invalid(exc)
            return
        except (ValueError, VLLMClientError) as exc:
            yield from_vllm(create_error_response(exc))
            return
        if isinstance(result, ErrorResponse):
            yield from_vllm(result)
        elif isinstance(result, AsyncGenerator):
            async with aclosing(result) as events:
                async for item in self._events(events):
                    yield item
        else:
            yield OpenAIAnswer(body=result.model_dump(mode="json"))

    @staticmethod
    async def _events(events: AsyncGenerator[str, None]) -> AsyncIterator[OpenAIAnswer | ServiceError | str]:
        # vLLM reports a request it refuses once generation starts (e.g. a prompt past the context) as the first
        # event of a 200 stream; seen before anything is sent, it can still be the 4xx it is.
        first = await anext(events, "data: [DONE]\n\n")
        if first.startswith('data: {"error"'):
            yield from_vllm(ErrorResponse.model_validate(json.loads(first.removeprefix("data: "))))
            return
        yield OpenAIAnswer()
        yield first
        async for event in events:
            yield event
