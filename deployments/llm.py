"""The LLM deployment: one vLLM engine per replica, adding only serving concerns."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.metrics import Counter, Histogram

from deployments.llm_engine import LLMEngine
from deployments.openai_protocol import CompletionRequest, CompletionResponse
from deployments.service_error import ServiceError
from tandem.settings import Settings

log = logging.getLogger("tandem.llm")


@serve.deployment(name="LLMServer", max_ongoing_requests=64, health_check_period_s=10, health_check_timeout_s=60)
class LLMServer:
    def __init__(self, settings: Settings):
        started = time.monotonic()
        self.engine = LLMEngine(settings)
        self.model_name = self.engine.model_name
        log.info(
            "llm engine ready", extra={"model": settings.llm_path, "seconds": round(time.monotonic() - started, 1)}
        )
        self.requests = Counter(
            "tandem_llm_requests", description="Completion requests by outcome.", tag_keys=("outcome",)
        )
        self.tokens = Counter("tandem_llm_completion_tokens", description="Tokens generated.")
        self.latency = Histogram(
            "tandem_llm_request_seconds",
            description="Completion latency, non-streaming.",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
        )

    async def completions(self, request: CompletionRequest) -> CompletionResponse | ServiceError:
        started = time.monotonic()
        result = await self.engine.complete(request)
        self.latency.observe(time.monotonic() - started)
        if isinstance(result, ServiceError):
            self.requests.inc(tags={"outcome": "rejected"})
        else:
            self.requests.inc(tags={"outcome": "ok"})
            self.tokens.inc(result.usage.completion_tokens)
        return result

    async def completions_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse | ServiceError]:
        outcome = "ok"
        async for chunk in self.engine.stream(request):
            if isinstance(chunk, ServiceError):
                outcome = "rejected"
            yield chunk
        self.requests.inc(tags={"outcome": outcome})

    def models(self) -> list[str]:
        return [self.model_name]

    async def check_health(self) -> None:
        # Serve restarts the replica when this raises, e.g. after the engine core process died.
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
