"""Request and response models for `POST /v1/candidates`."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from db.records import ExternalId


class CandidateRequest(BaseModel):
    user_id: ExternalId | None = Field(default=None, description="Read this user's history from the database.")
    history: list[ExternalId] | None = Field(
        default=None, max_length=10_000, description="Or give the history directly: item ids, oldest first."
    )
    k: int = Field(default=20, ge=1, description="How many candidates; at most the catalogue's size.")
    include_history: int = Field(
        default=0, ge=0, le=200, description="Also return the last N history items with titles (the ranker's input)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CandidateRequest:
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give exactly one of `user_id` or `history`")
        return self


class Candidate(BaseModel):
    item_id: str
    title: str | None
    score: float


class HistoryItem(BaseModel):
    item_id: str
    title: str | None
    comment: str | None = None


class CandidateResponse(BaseModel):
    user_id: str | None
    model_version: str
    fallback: bool = Field(description="True when the history told the model nothing: most-popular items.")
    candidates: list[Candidate]
    history: list[HistoryItem] = Field(default_factory=list, description="With `include_history`: oldest first.")
