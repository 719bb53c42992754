"""The pipelines' prompts for the LLM deployment, built where the pipelines run (the ingress) with the LLM's own
tokenizer: the verbalizer's ranking prompt, the QA prompt and the two book prompts. The LLM deployment only
scores and generates token ids.

A ranker adapter is served with the prompt it was trained on and the fusion weight tuned with it (both saved with
its version), whatever the settings say today; an adapter trained elsewhere, or no adapter, gets the settings'
prompt and the LLM's order alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from db import registry
from db.pool import Database
from models.books.prompts import BookPrompter, score_ids
from models.qa.prompts import QAPrompter
from models.verbalizer.fusion import saved_weight
from models.verbalizer.prompts import Verbalizer, saved_config
from tandem.settings import Settings

RANKER = "ranker"
# The ranker version the LLM deployment serves, until it has said: no version is this, so the first ranking
# is answered with the version served and the prompt is built for it.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Ranker:
    verbalizer: Verbalizer
    # The LLM's weight beside LRURec's score, fitted when the adapter was trained (models/verbalizer/fusion.py);
    # None (the base model, an adapter trained before fusion or elsewhere): the LLM's order alone.
    fusion_weight: float | None


class LLMPrompts:
    def __init__(self, settings: Settings):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
        # Fails the replica at start-up, with the labels named, if the tokenizer cannot read a ranking.
        self.default_verbalizer = Verbalizer(self.tokenizer, settings.verbalizer)
        self.qa = QAPrompter(self.tokenizer, settings.qa_max_context_tokens)
        self.books = BookPrompter(self.tokenizer, settings.books_max_prompt_tokens, settings.books_intro_chars)
        self.score_ids = score_ids(self.tokenizer)
        self.ranker_version: str | None = UNKNOWN
        self.default_ranker = Ranker(self.default_verbalizer, fusion_weight=None)
        self._rankers: dict[str, Ranker] = {}

    async def ranker(self, db: Database, version: str | None) -> Ranker:
        """Ranker `version`'s prompt and fusion weight (None: the base model), read once from its registered
        metrics."""
        if version is None or version == UNKNOWN:
            return self.default_ranker
        if version not in self._rankers:
            async with db.acquire() as conn:
                found = await registry.get_version(conn, RANKER, version)
            metrics = found.metrics if found is not None else {}
            cfg = saved_config(metrics)
            self._rankers[version] = Ranker(Verbalizer(self.tokenizer, cfg) if cfg else self.default_verbalizer,
                                            fusion_weight=saved_weight(metrics))
        return self._rankers[version]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)
