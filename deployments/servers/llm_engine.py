"""The vLLM engine behind one small contract: OpenAI-shaped completions, chat and label scoring in,
results or errors out, on the base model or one of its LoRA adapters.

vLLM's `AsyncLLM` does the batching (continuous batching across requests), the KV cache, the
sampling and the LoRA slots; this module only maps settings to engine arguments, requests to
sampling parameters and adapter names to `LoRARequest`s. It is imported inside the LLM deployment,
because building an engine starts worker processes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from deployments.protocol.openai import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    ChatMessage,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    SamplingFields,
    Usage,
)
from deployments.protocol.service_error import ServiceError
from deployments.servers.engine_placement import cpu_threads_env, lower_engine_priority
from deployments.servers.engine_turns import EngineTurns
from tandem.settings import Settings

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest
    from vllm.outputs import CompletionOutput

Final = tuple[list[int], list["CompletionOutput"]]


def engine_args(settings: Settings, lora: bool = True):
    from vllm.config import StructuredOutputsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = dict(
        model=settings.llm_path,
        served_model_name=[settings.llm_name],
        dtype=settings.llm_dtype,
        max_model_len=settings.llm_max_model_len,
        enforce_eager=settings.llm_enforce_eager,
        # No SamplingParams default would let a client ask for all logprobs of a 256k vocabulary.
        max_logprobs=max(20, settings.ranker_candidates),
        # Structured (JSON) answers without indentation: whitespace only costs tokens.
        structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
        enable_prefix_caching=settings.llm_enable_prefix_caching,
        max_num_batched_tokens=settings.llm_max_num_batched_tokens,
    )
    if lora:
        args |= dict(enable_lora=True, max_loras=settings.llm_max_loras, max_lora_rank=settings.llm_max_lora_rank)
    if settings.device == "cuda":
        args["gpu_memory_utilization"] = settings.llm_gpu_memory_utilization
    else:
        args["kv_cache_memory_bytes"] = int(settings.llm_kv_cache_gib * 2**30)
    return AsyncEngineArgs(**args)


class LLMEngine:
    def __init__(self, settings: Settings, *, ray_metrics: bool = True, lora: bool = True,
                 turns: EngineTurns | None = None, turn: str = "base"):
        """`turns`, shared by the engines of one process, lets one of them compute at a time; `turn` names this one."""
        from transformers import AutoTokenizer
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.async_llm import AsyncLLM

        stat_loggers = []
        if ray_metrics:
            # Exports vLLM's own metrics (queue, KV cache, token throughput) through Ray's Prometheus endpoint.
            from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

            stat_loggers.append(RayPrometheusStatLogger)
        # Errors caused by the request itself, e.g. a prompt longer than max_model_len: HTTP 400.
        self.client_errors = (ValueError, VLLMClientError)
        self.model_name = settings.llm_name
        self.max_model_len = settings.llm_max_model_len
        # The HF tokenizer renders chat templates and verbalizer prompts; vLLM is given token ids or text.
        self.tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
        os.environ.update(cpu_threads_env(settings))
        self.engine = AsyncLLM.from_engine_args(engine_args(settings, lora), stat_loggers=stat_loggers)
        lower_engine_priority(settings)
        self.adapters: dict[str, LoRARequest] = {}
        self.turns, self.turn = turns or EngineTurns(), turn
        self._lora_ids = itertools.count(1)

    async def check_health(self) -> None:
        await self.engine.check_health()

    def shutdown(self) -> None:
        self.engine.shutdown()

    # --- adapters --------------------------------------------------------------------------------
    def model_ids(self) -> list[str]:
        return [self.model_name] + [f"{self.model_name}:{name}" for name in sorted(self.adapters)]

    async def load_adapter(self, name: str, path: str) -> None:
        """Load (or replace) adapter `name` in the running engine. Requests that started on the old
        weights finish on them: vLLM reloads an evicted adapter from its request's path."""
        from vllm.lora.request import LoRARequest

        lora_id = next(self._lora_ids)
        request = LoRARequest(lora_name=f"{name}-{lora_id}", lora_int_id=lora_id, lora_path=path)
        await self.engine.add_lora(request)
        # One forward pass through the new weights before any request sees them: a broken adapter fails
        # here (and the old one keeps serving), and the first real request does not pay the warm-up.
        await self.warm_up(request)
        old, self.adapters[name] = self.adapters.get(name), request
        if old is not None:
            await self.engine.remove_lora(old.lora_int_id)

    async def warm_up(self, lora: LoRARequest | None = None) -> None:
        ids = self.tokenizer.encode("warm-up", add_special_tokens=False)
        await self.label_logprobs(ids, ids[:1], lora)

    def resolve(self, model: str | None) -> LoRARequest | None | ServiceError:
        """`None` or the base name: the base model; `base:adapter`: that adapter; anything else: 404."""
        if model in (None, self.model_name):
            return None
        base, _, adapter = model.partition(":")
        if base == self.model_name and adapter in self.adapters:
            return self.adapters[adapter]
        return ServiceError(
            status=404, type="not_found_error", param="model",
            message=f"model '{model}' is not served here; available: {self.model_ids()}",
        )

    # --- generation ------------------------------------------------------------------------------
    @staticmethod
    def _sampling_params(request: SamplingFields, logprobs: int | None = None) -> SamplingParams:
        from vllm import SamplingParams

        return SamplingParams(
            n=request.n,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            stop=request.stop,
            seed=request.seed,
            logprobs=logprobs,
        )

    async def _generate(self, prompt, params: SamplingParams, lora: LoRARequest | None) -> AsyncIterator:
        async with self.turns.turn(self.turn):
            async for output in self.engine.generate(prompt, params, uuid.uuid4().hex, lora_request=lora):
                yield output

    async def _final(self, prompt, params: SamplingParams, lora: LoRARequest | None) -> Final:
        # With n > 1 an intermediate output may carry only some choices, so keep the latest of each.
        prompt_ids: list[int] = []
        choices: dict[int, CompletionOutput] = {}
        async for output in self._generate(prompt, params, lora):
            prompt_ids = output.prompt_token_ids or prompt_ids
            choices.update({c.index: c for c in output.outputs})
        return prompt_ids, [choices[i] for i in sorted(choices)]

    async def _deltas(self, prompt, params: SamplingParams, lora: LoRARequest | None) -> AsyncIterator:
        """(choice, new text) per engine step, only for choices that moved or finished."""
        sent: dict[int, int] = {}
        async for out in self._generate(prompt, params, lora):
            for c in out.outputs:
                delta = c.text[sent.get(c.index, 0):]
                sent[c.index] = len(c.text)
                if delta or c.finish_reason:
                    yield c, delta

    @staticmethod
    def _usage(outputs: list[Final]) -> Usage:
        usage = Usage()
        for prompt_ids, completions in outputs:
            usage.prompt_tokens += len(prompt_ids)
            usage.completion_tokens += sum(len(c.token_ids) for c in completions)
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return usage

    async def complete(self, request: CompletionRequest) -> CompletionResponse | ServiceError:
        lora = self.resolve(request.model)
        if isinstance(lora, ServiceError):
            return lora
        params = self._sampling_params(request, request.logprobs)
        try:
            outputs = await asyncio.gather(*(self._final(p, params, lora) for p in request.prompts))
        except self.client_errors as exc:
            return ServiceError(status=400, message=str(exc), param="prompt")
        choices = [self._choice(i * request.n + c.index, c, c.text)
                   for i, (_, completions) in enumerate(outputs) for c in completions]
        return CompletionResponse(model=request.model or self.model_name, choices=choices, usage=self._usage(outputs))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse | ServiceError]:
        """One chunk per engine step and choice, carrying only the new text; streams one prompt at a time."""
        lora = self.resolve(request.model)
        if isinstance(lora, ServiceError):
            yield lora
            return
        params = self._sampling_params(request, request.logprobs)
        response_id, model = f"cmpl-{uuid.uuid4().hex}", request.model or self.model_name
        try:
            for i, prompt in enumerate(request.prompts):
                async for c, delta in self._deltas(prompt, params, lora):
                    choice = self._choice(i * request.n + c.index, c, delta)
                    yield CompletionResponse(id=response_id, model=model, choices=[choice], usage=Usage())
        except self.client_errors as exc:
            yield ServiceError(status=400, message=str(exc), param="prompt")

    def _chat_prompt(self, request: ChatCompletionRequest) -> str:
        messages = [m.model_dump() for m in request.messages]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse | ServiceError:
        lora = self.resolve(request.model)
        if isinstance(lora, ServiceError):
            return lora
        try:
            final = await self._final(self._chat_prompt(request), self._sampling_params(request), lora)
        except self.client_errors as exc:
            return ServiceError(status=400, message=str(exc), param="messages")
        choices = [ChatChoice(index=c.index, message=ChatMessage(role="assistant", content=c.text),
                              finish_reason=c.finish_reason) for c in final[1]]
        return ChatCompletionResponse(model=request.model or self.model_name, choices=choices,
                                      usage=self._usage([final]))

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk | ServiceError]:
        lora = self.resolve(request.model)
        if isinstance(lora, ServiceError):
            yield lora
            return
        response_id, model = f"chatcmpl-{uuid.uuid4().hex}", request.model or self.model_name
        started: set[int] = set()
        try:
            async for c, delta in self._deltas(self._chat_prompt(request), self._sampling_params(request), lora):
                role = None if c.index in started else "assistant"
                started.add(c.index)
                choice = ChatChunkChoice(index=c.index, delta=ChatDelta(role=role, content=delta),
                                         finish_reason=c.finish_reason)
                yield ChatCompletionChunk(id=response_id, model=model, choices=[choice])
        except self.client_errors as exc:
            yield ServiceError(status=400, message=str(exc), param="messages")

    async def greedy(self, prompt_ids: list[int], max_tokens: int | None, lora: LoRARequest | None,
                     schema: dict | None = None) -> AsyncIterator:
        """(choice, new text) per step of a greedy continuation of token ids: grounded answers, reproducible.
        `schema` constrains the text to JSON of it (vLLM structured output); a schema that bounds the output
        (enums, maxLength, maxItems) can leave `max_tokens` None: the rest of the context."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        params = SamplingParams(
            max_tokens=max_tokens or max(1, self.max_model_len - len(prompt_ids)), temperature=0.0,
            structured_outputs=StructuredOutputsParams(json=schema) if schema is not None else None)
        async for c, delta in self._deltas(TokensPrompt(prompt_token_ids=prompt_ids), params, lora):
            yield c, delta

    # --- scoring ---------------------------------------------------------------------------------
    async def label_logprobs(
        self, prompt_ids: list[int], label_ids: list[int], lora: LoRARequest | None
    ) -> list[float]:
        """Log-probabilities of `label_ids` as the next token after the prompt: one forward pass, no text."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=label_ids)
        _, outputs = await self._final(TokensPrompt(prompt_token_ids=prompt_ids), params, lora)
        step = outputs[0].logprobs[0]  # {token id: Logprob} for the first (only) generated position
        return [step[t].logprob for t in label_ids]

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
