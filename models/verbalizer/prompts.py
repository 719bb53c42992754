"""The LlamaRec verbalizer prompt: the user's history and a lettered candidate pool in one Alpaca-style text.

The ranking is read from the next-token log-probabilities of the candidate letters, so every letter
must be one token of the loaded tokenizer; `Verbalizer` checks that once, when it is built.
Prompts are built as token ids (left-truncated as LlamaRec's tokenizer does) so that training and
serving see exactly the same tokens.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

INSTRUCTION = (
    "Given user history in chronological order, recommend an item from the candidate pool with its index letter."
)
ALPACA = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"

# The registry of inputs: LlamaRec's, and GemmaRecAPI's with the user's survey profile and comments in front.
INPUTS = {
    "llamarec": "User history: {history}; \n Candidate pool: {candidates}",
    "gemmarec": "User profile: {profile}; \n User comments: {comments}; \n User history: {history}; \n"
                " Candidate pool: {candidates}",
}



class Layout(BaseModel):
    """How the history and the candidates are written: the tokens a ranking spends on more than titles."""

    history_item: str
    candidate_item: str
    separator: str
    short_years: bool = Field(description="A title's trailing '(1995)' written as \"'95\": 3 tokens instead of 6 "
                                          "where digits are single tokens (SmolLM2, Gemma).")


# LlamaRec's own layout, and the same content in fewer tokens: one-token separators, no history numbers,
# two-digit years (measured in docs/benchmarks.md: 504 -> ~340 tokens per ranking prompt with SmolLM2).
LAYOUTS = {
    "llamarec": Layout(history_item="({n}) {title}", candidate_item="({label}) {title}", separator=" \n ",
                       short_years=False),
    # Every compact item starts a line: a label after a space would be another token than the one read.
    "compact": Layout(history_item="\n{title}", candidate_item="\n{label} {title}", separator="", short_years=True),
}
YEAR = re.compile(r"\s*\((\d\d)(\d\d)\)$")


class Tokenizer(Protocol):
    eos_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class VerbalizerConfig(BaseModel):
    template: Literal["llamarec", "gemmarec"] = Field(default="llamarec", description="Which input template.")
    layout: Literal["llamarec", "compact"] = Field(default="llamarec", description="How items are written.")
    max_history: int = Field(default=10, ge=1, description="The last N history items go into the prompt.")
    max_title_tokens: int = Field(default=24, ge=1, description="Each title is cut to this many tokens.")
    max_prompt_tokens: int = Field(default=1024, ge=64, description="The whole prompt, left-truncated.")
    num_candidates: int = Field(default=20, ge=2, le=26, description="Candidates per prompt, labelled A, B, …")

    @property
    def labels(self) -> list[str]:
        return list(string.ascii_uppercase[: self.num_candidates])


class Profile(BaseModel):
    """What GemmaRecAPI adds: survey answers (style, job, …) and the user's own comments on items."""

    attributes: dict[str, str] = Field(default_factory=dict)
    comments: list[str] = Field(default_factory=list)


class LabelError(ValueError):
    """A candidate letter is not a single token of this tokenizer: the ranking could not be read."""


class Verbalizer:
    def __init__(self, tokenizer: Tokenizer, cfg: VerbalizerConfig | None = None):
        self.tokenizer = tokenizer
        self.cfg = cfg or VerbalizerConfig()
        self.label_ids = self._label_ids()

    def _label_ids(self) -> list[int]:
        ids, bad = [], {}
        for label in self.cfg.labels:
            tokens = self.tokenizer.encode(label, add_special_tokens=False)
            if len(tokens) != 1 or tokens[0] == getattr(self.tokenizer, "unk_token_id", None):
                bad[label] = tokens
            ids.extend(tokens[:1])
        if bad:
            raise LabelError(f"candidate labels must each be one token of the LLM's tokenizer; these are not: {bad}")
        if len(set(ids)) != len(ids):
            raise LabelError(f"candidate labels map to repeated token ids {ids}")
        return ids

    def _title(self, title: str) -> str:
        if LAYOUTS[self.cfg.layout].short_years:
            title = YEAR.sub(r" '\2", title)
        ids = self.tokenizer.encode(title, add_special_tokens=False)[: self.cfg.max_title_tokens]
        return self.tokenizer.decode(ids).strip()

    def text(self, history: list[str], candidates: list[str], profile: Profile | None = None) -> str:
        if not 1 <= len(candidates) <= len(self.cfg.labels):
            raise ValueError(f"a prompt holds 1 to {len(self.cfg.labels)} candidates, got {len(candidates)}")
        recent = history[-self.cfg.max_history:]
        labels = self.cfg.labels[: len(candidates)]
        profile = profile or Profile()
        layout = LAYOUTS[self.cfg.layout]
        body = INPUTS[self.cfg.template].format(
            history=layout.separator.join(layout.history_item.format(n=n, title=self._title(t))
                                          for n, t in enumerate(recent, start=1)),
            candidates=layout.separator.join(layout.candidate_item.format(label=a, title=self._title(t))
                                             for a, t in zip(labels, candidates, strict=True)),
            profile=", ".join(f"{k}: {v}" for k, v in profile.attributes.items()) or "none",
            comments=" / ".join(profile.comments[-self.cfg.max_history:]) or "none",
        )
        return ALPACA.format(instruction=INSTRUCTION, input=body)

    def prompt_ids(self, history: list[str], candidates: list[str], profile: Profile | None = None) -> list[int]:
        """Token ids of the prompt, keeping its end (the candidates and the response marker) when too long."""
        ids = self.tokenizer.encode(self.text(history, candidates, profile), add_special_tokens=False)
        return ids[-self.cfg.max_prompt_tokens:]

    def training_ids(
        self, history: list[str], candidates: list[str], answer: int, profile: Profile | None = None
    ) -> tuple[list[int], list[int]]:
        """(input ids, labels) for one example: the loss falls on the answer's letter and the end token only."""
        prompt = self.prompt_ids(history, candidates, profile)
        target = [self.label_ids[answer]] + ([self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id else [])
        return prompt + target, [-100] * len(prompt) + target


def saved_config(metrics: dict) -> VerbalizerConfig | None:
    """The prompt a ranker was trained on, from its metrics (`train_ranker` saves it there), or None for an
    adapter trained elsewhere: a ranker must be served with its own prompt."""
    saved = metrics.get("verbalizer")
    return VerbalizerConfig.model_validate(saved) if saved else None


def adapter_config(adapter_dir: str | Path) -> VerbalizerConfig | None:
    """`saved_config` of the metrics.json saved beside an adapter."""
    metrics = Path(adapter_dir) / "metrics.json"
    return saved_config(json.loads(metrics.read_text())) if metrics.is_file() else None
