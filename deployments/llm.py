"""The LLM deployment: one vLLM engine per replica with its LoRA adapters, adding only serving concerns."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db.pool import Database
from db.registry import ModelVersion
from deployments.books_protocol import (
    BookChoice,
    BookChoiceRequest,
    BookJudgement,
    BookJudgeRequest,
    BookPick,
    CatalogueEntry,
    LLMUsage,
)
from deployments.engine_turns import EngineTurns
from deployments.llm_engine import LLMEngine
from deployments.merged_engines import MergedEngines
from deployments.model_watch import ActiveAdapters
from deployments.openai_protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
)
from deployments.recommend_protocol import RankRequest, RankResult
from deployments.retriever_protocol import QAGeneration, QAPrompt
from deployments.service_error import ServiceError
from deployments.telemetry import LATENCY_BOUNDARIES
from models.books.catalogue import CatalogueBook
from models.books.prompts import BookPrompter, choice_schema, judged_scores, parse_choice, score_ids
from models.qa.prompts import Context, QAPrompter
from models.verbalizer.prompts import Verbalizer, adapter_config
from tandem.pipelines import ADAPTERS
from tandem.settings import Settings

log = logging.getLogger("tandem.llm")


def catalogue_book(entry: CatalogueEntry) -> CatalogueBook:
    return CatalogueBook(entry.book_id, entry.title, entry.author, tuple(entry.categories), entry.introduction)


@serve.deployment(name="LLMServer", max_ongoing_requests=64, health_check_period_s=10, health_check_timeout_s=60)
class LLMServer:
    async def __init__(self, settings: Settings):
        started = time.monotonic()
        # The engines of a replica (this one and merged copies of adapters) take turns on the cores.
        self.turns = EngineTurns()
        self.engine = LLMEngine(settings, turns=self.turns)
        self.model_name = self.engine.model_name
        # Fails the replica at start-up, with the labels named, if the tokenizer cannot read a ranking.
        self.verbalizer = Verbalizer(self.engine.tokenizer, settings.verbalizer)
        # A ranker adapter is served with the prompt it was trained on, whatever the settings say today.
        self.verbalizers: dict[str, Verbalizer] = {}
        self.qa_prompter = QAPrompter(self.engine.tokenizer, settings.qa_max_context_tokens)
        self.book_prompter = BookPrompter(self.engine.tokenizer, settings.books_max_prompt_tokens,
                                          settings.books_intro_chars)
        self.books_reason_chars = settings.books_reason_chars
        self.score_ids = score_ids(self.engine.tokenizer)
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
        self.merged = MergedEngines(settings, self.turns)
        self.adapters = ActiveAdapters(
            Database(settings.database_url, min_size=1, max_size=2), ADAPTERS, self._load_adapter,
            settings.model_poll_s,
        )
        await self.adapters.start()

    async def _load_adapter(self, version: ModelVersion) -> None:
        await self.engine.load_adapter(version.pipeline, version.artifact_path)
        if (cfg := adapter_config(version.artifact_path)) is not None:
            self.verbalizers[version.pipeline] = Verbalizer(self.engine.tokenizer, cfg)
        else:
            self.verbalizers.pop(version.pipeline, None)
        self.merged.activated(version)

    def _record(self, kind: str, started: float, result) -> None:
        self.latency.observe(time.monotonic() - started, tags={"kind": kind})
        self.requests.inc(tags={"kind": kind, "outcome": "rejected" if isinstance(result, ServiceError) else "ok"})
        if (usage := getattr(result, "usage", None)) is not None:
            self._count_tokens(kind, usage.prompt_tokens, usage.completion_tokens)
        elif isinstance(result, RankResult):
            self._count_tokens(kind, result.prompt_tokens, 0)

    def _count_tokens(self, kind: str, prompt: int, completion: int) -> None:
        for direction, count in (("prompt", prompt), ("completion", completion)):
            if count:
                self.tokens.inc(count, tags={"kind": kind, "direction": direction})

    async def completions(self, request: CompletionRequest) -> CompletionResponse | ServiceError:
        started = time.monotonic()
        result = await self.engine.complete(request)
        self._record("completion", started, result)
        return result

    async def _counted(self, kind: str, chunks: AsyncIterator) -> AsyncIterator:
        started, outcome, first = time.monotonic(), "ok", True
        async for chunk in chunks:
            if isinstance(chunk, ServiceError):
                outcome = "rejected"
            elif first:
                self.first_token.observe(time.monotonic() - started, tags={"kind": kind})
                first = False
            yield chunk
        self.requests.inc(tags={"kind": kind, "outcome": outcome})

    async def completions_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse | ServiceError]:
        async for chunk in self._counted("completion_stream", self.engine.stream(request)):
            yield chunk

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse | ServiceError:
        started = time.monotonic()
        result = await self.engine.chat(request)
        self._record("chat", started, result)
        return result

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk | ServiceError]:
        async for chunk in self._counted("chat_stream", self.engine.chat_stream(request)):
            yield chunk

    async def rank(self, request: RankRequest) -> RankResult | ServiceError:
        """The verbalizer: candidates ordered by their labels' next-token log-probabilities, one forward pass."""
        started = time.monotonic()
        adapter = request.adapter if request.adapter in self.engine.adapters else None
        lora = self.engine.adapters.get(adapter) if adapter else None
        verbalizer = self.verbalizers.get(adapter, self.verbalizer)
        try:
            prompt = verbalizer.prompt_ids(request.history, request.candidates, request.profile)
        except ValueError as exc:
            result = ServiceError(status=422, param="candidates", message=str(exc))
        else:
            label_ids = verbalizer.label_ids[: len(request.candidates)]
            merged = await self.merged.label_logprobs(adapter, prompt, label_ids) if adapter else None
            if merged is not None:
                (logprobs, version), served_as = merged, "merged"
            else:
                logprobs = await self.engine.label_logprobs(prompt, label_ids, lora)
                version = self.adapters.versions[adapter].version if adapter in self.adapters.versions else None
                served_as = "lora" if adapter else None
            result = RankResult(order=verbalizer.order(logprobs), logprobs=logprobs, adapter=adapter,
                                adapter_version=version, adapter_served_as=served_as, prompt_tokens=len(prompt))
        self._record("rank", started, result)
        return result

    async def answer(self, request: QAPrompt) -> AsyncIterator[QAGeneration | ServiceError]:
        """The `qa` adapter (the base model until one is trained) answering from passages, streamed: text
        deltas, then a last item with the token counts."""
        started, streamed = time.monotonic(), False
        lora, model, version = self._adapter("qa")
        prompt, used = self.qa_prompter.prompt_ids(
            request.question, [Context(p.text, p.source) for p in request.passages])
        completion = None
        try:
            async for c, delta in self.engine.greedy(prompt, request.max_tokens, lora):
                completion = c
                if delta:
                    if not streamed:
                        self.first_token.observe(time.monotonic() - started, tags={"kind": "answer"})
                        streamed = True
                    yield QAGeneration(text=delta, model=model, adapter_version=version, prompt_tokens=len(prompt),
                                       completion_tokens=0, passages_used=used)
        except self.engine.client_errors as exc:
            error = ServiceError(status=400, param="question", message=str(exc))
            self.requests.inc(tags={"kind": "answer", "outcome": "rejected"})
            yield error
            return
        tokens = len(completion.token_ids) if completion else 0
        self._count_tokens("answer", len(prompt), tokens)
        self.requests.inc(tags={"kind": "answer", "outcome": "ok"})
        self.latency.observe(time.monotonic() - started, tags={"kind": "answer"})
        yield QAGeneration(text="", model=model, adapter_version=version, prompt_tokens=len(prompt),
                           completion_tokens=tokens, passages_used=used, finished=True)

    def _adapter(self, pipeline: str):
        """The pipeline's adapter when one is served, else the base model: (LoRARequest or None, model name,
        adapter version)."""
        if pipeline not in self.engine.adapters:
            return None, self.model_name, None
        version = self.adapters.versions.get(pipeline)
        return (self.engine.adapters[pipeline], f"{self.model_name}:{pipeline}",
                version.version if version else None)

    async def choose_books(self, request: BookChoiceRequest) -> BookChoice | ServiceError:
        """n of the candidates with a reason each, as JSON constrained to the candidates' ids (the `books`
        adapter, or the base model until one is trained)."""
        started = time.monotonic()
        lora, model, version = self._adapter("books")
        books = [catalogue_book(c) for c in request.candidates]
        prompt, shown = self.book_prompter.choose(request.answers, request.reader, books, request.n)
        ids = [b.id for b in shown]
        schema = choice_schema(ids, min(request.n, len(ids)), self.books_reason_chars)
        try:
            text, prompt_tokens, completion_tokens = await self.engine.structured(prompt, schema, lora)
            picks = parse_choice(text, ids)
        except self.engine.client_errors as exc:
            result = ServiceError(status=502, type="llm_error", message=str(exc))
        else:
            result = BookChoice(picks=[BookPick(book_id=p.book_id, reason=p.reason) for p in picks],
                                candidates_shown=len(shown), model=model, adapter_version=version,
                                usage=LLMUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        self._record("books", started, result)
        return result

    async def judge_books(self, request: BookJudgeRequest) -> BookJudgement | ServiceError:
        """A recommendation scored 0-5 against the fixed rubric by the base model, in its own call: one forward
        pass, the score read from the digits' next-token probabilities."""
        started = time.monotonic()
        chosen = [(catalogue_book(c), reason) for c, reason in request.chosen]
        prompt = self.engine.tokenizer.encode(self.book_prompter.judge(request.answers, request.reader, chosen),
                                              add_special_tokens=False)
        try:
            score, expected = judged_scores(await self.engine.label_logprobs(prompt, self.score_ids, None))
        except self.engine.client_errors as exc:
            result = ServiceError(status=400, param="books", message=str(exc))
        else:
            result = BookJudgement(score=score, expected_score=round(expected, 4),
                                   usage=LLMUsage(prompt_tokens=len(prompt), completion_tokens=0))
        self._record("judge", started, result)
        return result

    def models(self) -> list[str]:
        return self.engine.model_ids()

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
