"""The keyword deployment: the active fine-tuned BART with one batched beam search for many texts
(`@serve.batch`), or the morphological analyser until a model is registered."""

from __future__ import annotations

import asyncio
import time

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db.pool import Database
from deployments.protocol.keywords import KeywordResult, KeywordsRequest, KeywordsResponse
from deployments.protocol.service_error import ServiceError
from deployments.servers.batching import batched, per_model
from deployments.servers.model_watch import ActiveModel, ServesActiveModel
from deployments.telemetry import replica_logs
from models.kobart.model import KeywordModel
from models.korean import analyzer_keywords
from tandem.artifacts import node_cache
from tandem.settings import Settings

PIPELINE = "kobart"


@serve.deployment(name="Keywords", max_ongoing_requests=128)
class KeywordServer(ServesActiveModel):
    async def __init__(self, settings: Settings):
        replica_logs()
        from transformers import AutoTokenizer

        generation, device = settings.keywords_generation, settings.model_device("keywords")
        self.max_input_tokens = generation.max_input_tokens
        # The base tokenizer measures inputs for the analyser too, so the length limit does not depend on
        # whether a model is trained yet.
        self.tokenizer = AutoTokenizer.from_pretrained(settings.bart_path)
        self.active = ActiveModel(Database(settings.database_url, min_size=1, max_size=2), PIPELINE,
                                  lambda v: KeywordModel.load(v.artifact_path, generation, device),
                                  settings.model_poll_s, node_cache(settings))
        await self.active.start()
        self.batch_sizes = batched(self.extract_batch, settings.keywords_max_batch_size,
                                   settings.keywords_batch_wait_ms, "tandem_keywords_batch_size",
                                   "Texts per batched generate.")
        self.texts = Counter("tandem_keywords_texts", description="Texts extracted, by model.", tag_keys=("model",))
        self.latency = Histogram("tandem_keywords_seconds", description="Keyword request latency in the deployment.",
                                 boundaries=[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def extract_batch(self, items: list[tuple[KeywordModel, str]]) -> list[list[str]]:
        self.batch_sizes.observe(len(items))
        return await per_model(items, lambda item: item[0], lambda model, rows: model.extract([t for _, t in rows]))

    async def extract(self, request: KeywordsRequest) -> KeywordsResponse | ServiceError:
        started = time.monotonic()
        texts = request.all_texts()
        for i, text in enumerate(texts):
            if (n := len(self.tokenizer.encode(text))) > self.max_input_tokens:
                where = "text" if request.text is not None else f"texts[{i}]"
                return ServiceError(status=422, param=where,
                                    message=f"{where} is {n} tokens; the keyword model takes at most "
                                            f"{self.max_input_tokens}")
        model, version = self.active.current, self.active.version
        if model is None:
            keywords = [analyzer_keywords(t) for t in texts]
        else:
            keywords = await asyncio.gather(*(self.extract_batch((model, t)) for t in texts))
        name = "analyzer" if model is None else "kobart"
        self.texts.inc(len(texts), tags={"model": name})
        self.latency.observe(time.monotonic() - started)
        return KeywordsResponse(model=name, model_version=version.version if model is not None else None,
                                results=[KeywordResult(text=t, keywords=k) for t, k in zip(texts, keywords,
                                                                                          strict=True)])
