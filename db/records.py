"""Pydantic records crossing the data layer: what clients send and what queries return."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_BATCH = 10_000

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
Rating = Annotated[float, Field(ge=0, le=10)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(Record):
    external_id: ExternalId = Field(description="The client's id for this user.")
    sex: str | None = None
    job: str | None = None
    married: bool | None = None
    style: str | None = Field(default=None, description="Preferred style, from the survey profile.")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Any further profile answers.")


class User(UserIn):
    created_at: datetime
    updated_at: datetime


class ItemIn(Record):
    external_id: ExternalId
    title: Text
    style: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Item(ItemIn):
    created_at: datetime
    updated_at: datetime


class InteractionIn(Record):
    user_id: ExternalId = Field(description="External id of a user sent to /v1/users.")
    item_id: ExternalId = Field(description="External id of an item sent to /v1/items.")
    rating: Rating | None = None
    comment: str | None = Field(default=None, max_length=10_000)
    timestamp: datetime = Field(description="When it happened: ISO 8601 or Unix seconds; naive times are UTC.")

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, ts: datetime) -> datetime:
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


class Interaction(InteractionIn):
    created_at: datetime


class SurveyIn(Record):
    user_id: ExternalId
    kind: Literal["profile", "book_emotion"] = Field(
        description="`profile`: the recommender's survey (sex, job, style, …); `book_emotion`: the five book questions."
    )
    answers: dict[str, Any] = Field(min_length=1)


class Survey(SurveyIn):
    id: int
    created_at: datetime


class BookIn(Record):
    external_id: ExternalId = Field(description="ISBN or the catalogue's own id.")
    title: Text
    author: str | None = None
    introduction: str | None = None
    categories: list[str] = Field(default_factory=list)
    rating: Rating | None = None
    review_count: int | None = Field(default=None, ge=0)
    pages: int | None = Field(default=None, gt=0)
    price: int | None = Field(default=None, ge=0)


class Book(BookIn):
    created_at: datetime
    updated_at: datetime


class DocumentIn(Record):
    external_id: ExternalId
    title: Text
    source: str | None = Field(default=None, description="Where the text comes from: a URL, a law, a manual.")
    text: str | None = Field(default=None, description="Whole text; split into passages at blank lines.")
    passages: list[Text] | None = Field(default=None, description="Passages as the source divides them.")

    @model_validator(mode="after")
    def _has_passages(self) -> DocumentIn:
        if (self.text is None) == (self.passages is None):
            raise ValueError("give exactly one of `text` or `passages`")
        if self.text is not None:
            self.passages = [p.strip() for p in self.text.split("\n\n") if p.strip()]
        if not self.passages:
            raise ValueError("a document needs at least one non-empty passage")
        return self


class Document(Record):
    external_id: str
    title: str
    source: str | None
    passages: list[str]
    created_at: datetime
    updated_at: datetime


class UserBatch(Record):
    users: list[UserIn] = Field(min_length=1, max_length=MAX_BATCH)


class ItemBatch(Record):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_BATCH)


class InteractionBatch(Record):
    interactions: list[InteractionIn] = Field(min_length=1, max_length=MAX_BATCH)


class SurveyBatch(Record):
    surveys: list[SurveyIn] = Field(min_length=1, max_length=MAX_BATCH)


class BookBatch(Record):
    books: list[BookIn] = Field(min_length=1, max_length=MAX_BATCH)


class DocumentBatch(Record):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_BATCH)


class UpsertResult(BaseModel):
    received: int
    created: int
    updated: int
    unchanged: int


class InsertResult(BaseModel):
    received: int
    inserted: int
    duplicates: int = Field(description="Records already stored (same user, item and time): not written again.")
