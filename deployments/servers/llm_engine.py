"""The vLLM engine of an LLM replica: settings to engine arguments, adapters by name, label scoring and greedy
text in token ids for the pipelines. OpenAI requests go through vLLM's own serving layer over the same engine
(openai_frontend.py).

vLLM's `AsyncLLM` does the batching (continuous batching across requests), the KV cache, the sampling and the
LoRA slots. It is imported inside the LLM deployment, because building an engine starts worker processes.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

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
        enforce_eager=settings.device != "cuda" if settings.llm_enforce_eager is None else settings.llm_enforce_eager,
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
        # Read by vLLM when it checks a request's `n`; its own default (16,384) lets one request fill the engine.
        os.environ["VLLM_MAX_N_SEQUENCES"] = str(settings.llm_max_n)
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
    async def load_adapter(self, name: str, path: str) -> None:
        """Load (or replace) adapter `name` in the running engine. Requests that started on the old
        weights finish on them: vLLM reloads an evicted adapter from its request's path."""
        from vllm.lora.request import LoRARequest

        lora_id = next(self._lora_ids)
        # Named as clients name it (`base:adapter`), which vLLM's serving layer reports in answers and /v1/models.
        request = LoRARequest(lora_name=f"{self.model_name}:{name}", lora_int_id=lora_id, lora_path=path,
                              base_model_name=self.model_name)
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

    async def pause(self) -> None:
        """Stop computing after the current step; the requests in flight stay, frozen with their KV cache."""
        await self.engine.pause_generation(mode="keep", clear_cache=False)

    async def resume(self) -> None:
        await self.engine.resume_generation()

    # --- generation ------------------------------------------------------------------------------
    async def generate(self, *args, **kwargs) -> AsyncIterator:
        """vLLM's `generate`, once this engine's turn on the cores has come (`EngineTurns`). Closed before its end
        (a consumer that stops reading), it closes vLLM's generator too, which aborts the request in the engine."""
        async with self.turns.turn(self.turn):
            async with aclosing(self.engine.generate(*args, **kwargs)) as outputs:
                async for output in outputs:
                    yield output

    def _generate(self, prompt, params: SamplingParams, lora: LoRARequest | None) -> AsyncIterator:
        return self.generate(prompt, params, uuid.uuid4().hex, lora_request=lora)

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
