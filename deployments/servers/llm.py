"""The LLM deployment: one vLLM engine per replica with its LoRA adapters, adding only serving concerns."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db.pool import Database
from db.registry import ModelVersion
from deployments.protocol.llm import AdapterChanged, Generate, Generated, LabelScores, OpenAIAnswer, ScoreLabels
from deployments.protocol.service_error import ServiceError
from deployments.servers.engine_turns import EngineTurns
from deployments.servers.llm_engine import LLMEngine
from deployments.servers.merged_engines import MergedEngines
from deployments.servers.model_watch import ActiveAdapters
from deployments.servers.stream_batches import batched_events
from deployments.telemetry import LATENCY_BOUNDARIES, replica_logs
from tandem.artifacts import node_cache
from tandem.pipelines import ADAPTERS
from tandem.settings import Settings

log = logging.getLogger("tandem.llm")


@serve.deployment(name="LLMServer", max_ongoing_requests=64, health_check_period_s=10, health_check_timeout_s=60)
class LLMServer:
    async def __init__(self, settings: Settings):
        replica_logs()
        started = time.monotonic()
        # The engines of a replica (this one and merged copies of adapters) take turns on the cores.
        self.turns = EngineTurns(settings.llm_turn_slice_s)
        self.engine = LLMEngine(settings, turns=self.turns)
        # Its generations run for seconds; an adapter's merged engine (a ranking: one forward pass) need not wait
        # for them to end.
        self.turns.pausable(self.engine.turn, self.engine.pause, self.engine.resume)
        self.model_name = self.engine.model_name
        self.stream_interval_s = settings.llm_stream_interval_ms / 1000
        await self.engine.warm_up()  # the first forward pass is several times slower than the next ones
        log.info(
            "llm engine ready", extra={"model": settings.llm_path, "seconds": round(time.monotonic() - started, 1)}
        )
        self.requests = Counter(
            "tandem_llm_requests", description="LLM requests by kind and outcome.", tag_keys=("kind", "outcome")
        )
        self.tokens = Counter("tandem_llm_tokens", description="Tokens in (prompt) and out (completion) by kind.",
                              tag_keys=("kind", "direction"))
        self.first_token = Histogram("tandem_llm_first_token_seconds", boundaries=LATENCY_BOUNDARIES,
                                     description="Time to the first streamed text, by kind.", tag_keys=("kind",))
        self.latency = Histogram(
            "tandem_llm_request_seconds",
            description="LLM latency by kind, non-streaming.",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
            tag_keys=("kind",),
        )
        # Imported here: vLLM's serving layer imports torch, and the app's builder imports this module.
        from deployments.servers.openai_frontend import OpenAIFrontend

        self.openai_frontend = OpenAIFrontend(self.engine, settings.llm_path)
        self.merged = MergedEngines(settings, self.turns)
        self.adapters = ActiveAdapters(
            Database(settings.database_url, min_size=1, max_size=2), ADAPTERS, self._load_adapter,
            settings.model_poll_s, node_cache(settings),
        )
        await self.adapters.start()

    async def _load_adapter(self, version: ModelVersion) -> None:
        await self.engine.load_adapter(version.pipeline, version.artifact_path)
        self.merged.activated(version)

    def _record(self, kind: str, started: float, result) -> None:
        self.latency.observe(time.monotonic() - started, tags={"kind": kind})
        self.requests.inc(tags={"kind": kind, "outcome": "rejected" if isinstance(result, ServiceError) else "ok"})
        if isinstance(result, LabelScores | Generated):
            self._count_tokens(kind, result.prompt_tokens, getattr(result, "completion_tokens", 0))

    def _count_tokens(self, kind: str, prompt: int, completion: int) -> None:
        for direction, count in (("prompt", prompt), ("completion", completion)):
            if count:
                self.tokens.inc(count, tags={"kind": kind, "direction": direction})

    async def openai(self, route: str, body: dict) -> AsyncIterator[OpenAIAnswer | ServiceError | str]:
        """An OpenAI request (`completions` or `chat/completions`, its JSON as the client sent it) answered by
        vLLM's serving layer: first the answer or its error, then a stream's events (`OpenAIFrontend.answer`)."""
        kind = ("chat" if route == "chat/completions" else "completion") + ("_stream" if body.get("stream") else "")
        started, outcome, events = time.monotonic(), "cancelled", 0
        answer = self.openai_frontend.answer(route, body)
        # Counted in `finally`: the ingress closes this generator as soon as it holds a whole answer, so code after
        # the loop may never run.
        try:
            async for item in batched_events(answer, self.stream_interval_s):
                if isinstance(item, ServiceError):
                    outcome = "rejected"
                elif isinstance(item, OpenAIAnswer) and item.body is not None:
                    outcome = "ok"
                    self.latency.observe(time.monotonic() - started, tags={"kind": kind})
                    if usage := item.body.get("usage"):
                        self._count_tokens(kind, usage["prompt_tokens"], usage.get("completion_tokens") or 0)
                elif isinstance(item, str):
                    events += 1
                    if events == 1:
                        self.first_token.observe(time.monotonic() - started, tags={"kind": kind})
                yield item
            if outcome == "cancelled":  # a stream read to its end
                outcome = "ok"
        finally:
            self.requests.inc(tags={"kind": kind, "outcome": outcome})

    def _adapter(self, name: str | None):
        """The adapter when it is served, else the base model: (LoRARequest or None, model name, adapter
        version)."""
        if name not in self.engine.adapters:
            return None, self.model_name, None
        version = self.adapters.versions.get(name)
        return self.engine.adapters[name], f"{self.model_name}:{name}", version.version if version else None

    async def score_labels(self, request: ScoreLabels) -> LabelScores | AdapterChanged | ServiceError:
        """Log-probabilities of the labels as the next token after the prompt: one forward pass, no text. The
        adapter is served merged into its own engine when it has one (faster on CPU), else as LoRA."""
        started = time.monotonic()
        lora, _, version = self._adapter(request.adapter)
        if version != request.adapter_version:
            return AdapterChanged(served=version)
        adapter = request.adapter if lora is not None else None
        try:
            merged = await self.merged.label_logprobs(adapter, request.prompt, request.labels) if adapter else None
            if merged is not None:
                (logprobs, version), served_as = merged, "merged"
            else:
                logprobs = await self.engine.label_logprobs(request.prompt, request.labels, lora)
                served_as = "lora" if adapter else None
        except self.engine.client_errors as exc:
            result = ServiceError(status=400, param="prompt", message=str(exc))
        else:
            result = LabelScores(logprobs=logprobs, adapter=adapter, adapter_version=version, served_as=served_as,
                                 prompt_tokens=len(request.prompt))
        self._record(request.kind, started, result)
        return result

    async def generate_stream(self, request: Generate) -> AsyncIterator[Generated | ServiceError]:
        """Greedy text from the adapter (the base model until it is loaded), streamed: text pieces, then a last
        piece with the token counts."""
        started, streamed = time.monotonic(), False
        lora, model, version = self._adapter(request.adapter)
        completion = None
        try:
            async for c, delta in self.engine.greedy(request.prompt, request.max_tokens, lora, request.json_schema):
                completion = c
                if delta:
                    if not streamed:
                        self.first_token.observe(time.monotonic() - started, tags={"kind": request.kind})
                        streamed = True
                    yield Generated(text=delta, model=model, adapter_version=version,
                                    prompt_tokens=len(request.prompt), completion_tokens=0)
        except self.engine.client_errors as exc:
            self.requests.inc(tags={"kind": request.kind, "outcome": "rejected"})
            yield ServiceError(status=400, param="prompt", message=str(exc))
            return
        done = Generated(text="", model=model, adapter_version=version, prompt_tokens=len(request.prompt),
                         completion_tokens=len(completion.token_ids) if completion else 0, finished=True)
        self._record(request.kind, started, done)
        yield done

    async def generate(self, request: Generate) -> Generated | ServiceError:
        """The whole greedy text at once, e.g. JSON constrained to `json_schema`."""
        text, last = [], None
        async for piece in self.generate_stream(request):
            if isinstance(piece, ServiceError):
                return piece
            text.append(piece.text)
            last = piece
        return last.model_copy(update={"text": "".join(text)})

    async def openai_models(self) -> dict:
        return await self.openai_frontend.model_list()

    def adapter_versions(self) -> dict[str, str]:
        return {name: v.version for name, v in self.adapters.versions.items()}

    async def check_health(self) -> None:
        # Serve restarts the replica when this raises, e.g. after the engine core process died.
        await self.engine.check_health()

    def __del__(self) -> None:
        if (adapters := getattr(self, "adapters", None)) is not None:
            adapters.stop()
        if (merged := getattr(self, "merged", None)) is not None:
            merged.shutdown()
        if (engine := getattr(self, "engine", None)) is not None:
            engine.shutdown()
