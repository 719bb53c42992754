"""The pipelines' prompts for the LLM deployment, built where the pipelines run (the ingress) with the LLM's own
tokenizer: the verbalizer's ranking prompt, the QA prompt and the two book prompts. The LLM deployment only
scores and generates token ids.

A ranker adapter is served with the prompt it was trained on (saved with its version), whatever the settings
say today; an adapter trained elsewhere, or no adapter, gets the settings' prompt.
"""

from __future__ import annotations

from db import registry
from db.pool import Database
from models.books.prompts import BookPrompter, score_ids
from models.qa.prompts import QAPrompter
from models.verbalizer.prompts import Verbalizer, saved_config
from tandem.settings import Settings

RANKER = "ranker"
# The ranker version the LLM deployment serves, until it has said: no version is this, so the first ranking
# is answered with the version served and the prompt is built for it.
UNKNOWN = "unknown"


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
        self._verbalizers: dict[str, Verbalizer] = {}

    async def ranker_verbalizer(self, db: Database, version: str | None) -> Verbalizer:
        """The verbalizer of ranker `version` (None: the base model), read once from its registered metrics."""
        if version is None or version == UNKNOWN:
            return self.default_verbalizer
        if version not in self._verbalizers:
            async with db.acquire() as conn:
                found = await registry.get_version(conn, RANKER, version)
            cfg = saved_config(found.metrics) if found is not None else None
            self._verbalizers[version] = Verbalizer(self.tokenizer, cfg) if cfg else self.default_verbalizer
        return self._verbalizers[version]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)
