"""Request and response bodies of keyword extraction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

MAX_TEXTS = 64


class KeywordsRequest(BaseModel):
    text: str | None = Field(default=None, description="One text; or give `texts`.")
    texts: list[str] | None = Field(default=None, min_length=1, max_length=MAX_TEXTS,
                                    description=f"Up to {MAX_TEXTS} texts, extracted in one batch.")

    @model_validator(mode="after")
    def _one_form(self) -> KeywordsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` or `texts`")
        for i, t in enumerate(self.all_texts()):
            if not t.strip():
                raise ValueError("text is empty" if self.text is not None else f"texts[{i}] is empty")
        return self

    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class KeywordResult(BaseModel):
    text: str
    keywords: list[str]


class KeywordsResponse(BaseModel):
    model: Literal["kobart", "analyzer"] = Field(
        description="`kobart`: the fine-tuned model; `analyzer`: the morphological analyser, until one is trained.")
    model_version: str | None
    results: list[KeywordResult]
