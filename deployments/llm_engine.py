"""The vLLM engine behind one small contract: OpenAI-shaped completions in, results or errors out.

vLLM's `AsyncLLM` does the batching (continuous batching across requests), the KV cache and
the sampling; this module only maps settings to engine arguments and requests to sampling
parameters. It is imported inside the LLM deployment, because building an engine starts
worker processes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from deployments.openai_protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    Usage,
)
from deployments.service_error import ServiceError
from tandem.settings import Settings

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.outputs import CompletionOutput


def engine_args(settings: Settings):
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = dict(
        model=settings.llm_path,
        served_model_name=[settings.llm_name],
        dtype=settings.llm_dtype,
        max_model_len=settings.llm_max_model_len,
        enforce_eager=settings.llm_enforce_eager,
        enable_lora=True,
        max_loras=settings.llm_max_loras,
        max_lora_rank=settings.llm_max_lora_rank,
        # No SamplingParams default would let a client ask for all logprobs of a 256k vocabulary.
        max_logprobs=20,
    )
    if settings.device == "cuda":
        args["gpu_memory_utilization"] = settings.llm_gpu_memory_utilization
    else:
        args["kv_cache_memory_bytes"] = int(settings.llm_kv_cache_gib * 2**30)
    return AsyncEngineArgs(**args)


class LLMEngine:
    def __init__(self, settings: Settings, *, ray_metrics: bool = True):
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.async_llm import AsyncLLM

        stat_loggers = []
        if ray_metrics:
            # Exports vLLM's own metrics (queue, KV cache, token throughput) through Ray's Prometheus endpoint.
            from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

            stat_loggers.append(RayPrometheusStatLogger)
        # Errors caused by the request itself, e.g. a prompt longer than max_model_len: HTTP 400.
        self._client_errors = (ValueError, VLLMClientError)
        self.model_name = settings.llm_name
        self.engine = AsyncLLM.from_engine_args(engine_args(settings), stat_loggers=stat_loggers)

    async def check_health(self) -> None:
        await self.engine.check_health()

    def shutdown(self) -> None:
        self.engine.shutdown()

    def _sampling_params(self, request: CompletionRequest) -> SamplingParams:
        from vllm import SamplingParams

        return SamplingParams(
            n=request.n,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            stop=request.stop,
            seed=request.seed,
            logprobs=request.logprobs,
        )

    def _check_model(self, request: CompletionRequest) -> ServiceError | None:
        if request.model in (None, self.model_name):
            return None
        return ServiceError(
            status=404,
            type="not_found_error",
            param="model",
            message=f"model '{request.model}' is not served here; available: ['{self.model_name}']",
        )

    async def _generate(self, prompt: str, params: SamplingParams) -> AsyncIterator:
        request_id = uuid.uuid4().hex
        async for output in self.engine.generate(prompt, params, request_id):
            yield output

    async def complete(self, request: CompletionRequest) -> CompletionResponse | ServiceError:
        if error := self._check_model(request):
            return error
        params = self._sampling_params(request)

        async def final(prompt: str) -> tuple[list[int], list[CompletionOutput]]:
            # With n > 1 an intermediate output may carry only some choices, so keep the latest of each.
            prompt_ids: list[int] = []
            choices: dict[int, CompletionOutput] = {}
            async for output in self._generate(prompt, params):
                prompt_ids = output.prompt_token_ids or prompt_ids
                choices.update({c.index: c for c in output.outputs})
            return prompt_ids, [choices[i] for i in sorted(choices)]

        try:
            outputs = await asyncio.gather(*(final(p) for p in request.prompts))
        except self._client_errors as exc:
            return ServiceError(status=400, message=str(exc), param="prompt")
        choices, usage = [], Usage()
        for i, (prompt_ids, completions) in enumerate(outputs):
            usage.prompt_tokens += len(prompt_ids)
            for c in completions:
                usage.completion_tokens += len(c.token_ids)
                choices.append(self._choice(i * request.n + c.index, c, c.text))
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return CompletionResponse(model=self.model_name, choices=choices, usage=usage)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse | ServiceError]:
        """One chunk per engine step and choice, carrying only the new text; streams one prompt at a time."""
        if error := self._check_model(request):
            yield error
            return
        params = self._sampling_params(request)
        response_id = f"cmpl-{uuid.uuid4().hex}"
        try:
            for i, prompt in enumerate(request.prompts):
                sent: dict[int, int] = {}
                async for out in self._generate(prompt, params):
                    for c in out.outputs:
                        delta = c.text[sent.get(c.index, 0) :]
                        sent[c.index] = len(c.text)
                        if delta or c.finish_reason:
                            choice = self._choice(i * request.n + c.index, c, delta)
                            yield CompletionResponse(
                                id=response_id, model=self.model_name, choices=[choice], usage=Usage()
                            )
        except self._client_errors as exc:
            yield ServiceError(status=400, message=str(exc), param="prompt")

    @staticmethod
    def _choice(index: int, c: CompletionOutput, text: str) -> CompletionChoice:
        logprobs = None
        if c.logprobs:
            logprobs = CompletionLogprobs()
            for token_id, step in zip(c.token_ids, c.logprobs, strict=True):
                chosen = step.get(token_id)
                logprobs.tokens.append(chosen.decoded_token if chosen else str(token_id))
                logprobs.token_logprobs.append(chosen.logprob if chosen else None)
                logprobs.top_logprobs.append({lp.decoded_token or str(t): lp.logprob for t, lp in step.items()})
        return CompletionChoice(index=index, text=text, logprobs=logprobs, finish_reason=c.finish_reason)
