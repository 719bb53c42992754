"""Pydantic records crossing the data layer: what clients send and what queries return."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_BATCH = 10_000

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
Rating = Annotated[float, Field(ge=0, le=10)]


# PostgreSQL's `integer`, the type of the counts below.
Int4 = Annotated[int, Field(le=2**31 - 1)]


def _storable(value: Any) -> None:
    """Refuse what PostgreSQL would refuse inside text and jsonb, so that the client learns which record and field
    it was (a rejected statement names neither): the NUL character, and numbers that are not finite."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text cannot contain the NUL character (\\u0000)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (not NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _fits_the_database(cls, value: Any) -> Any:
        _storable(value)
        return value


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
    review_count: Int4 | None = Field(default=None, ge=0)
    pages: Int4 | None = Field(default=None, gt=0)
    price: Int4 | None = Field(default=None, ge=0)


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


class ReadingEntryIn(Record):
    book_id: ExternalId | None = Field(
        default=None, description="External id of a catalogue book; without it the title is matched to the catalogue.")
    title: Text
    author: str | None = None
    rating: float | None = Field(default=None, ge=0, le=5, description="The user's rating, 0 to 5.")
    review: str | None = Field(default=None, max_length=10_000)
    read_at: date | None = None
    genres: list[str] = Field(default_factory=list)


class ReadingEntry(ReadingEntryIn):
    in_catalogue: bool = Field(description="Whether the entry is linked to a catalogue book.")


class ReadingHistoryBatch(Record):
    user_id: ExternalId
    entries: list[ReadingEntryIn] = Field(min_length=1, max_length=1000)


class ReadingPreferences(Record):
    genres: dict[str, float] = Field(default_factory=dict,
                                     description="Genre → weight in [0, 1]: how much the user likes it.")
    reading_style: str | None = Field(default=None, max_length=500, description="e.g. 짧은 호흡으로 읽기")
    keywords: list[str] = Field(default_factory=list, max_length=50)
    avoid_topics: list[str] = Field(default_factory=list, max_length=50,
                                    description="Books whose title, categories or introduction mention one of "
                                                "these are never recommended.")

    @field_validator("genres")
    @classmethod
    def _weights(cls, genres: dict[str, float]) -> dict[str, float]:
        if bad := {g: w for g, w in genres.items() if not 0 <= w <= 1}:
            raise ValueError(f"genre weights must be in [0, 1]: {bad}")
        return genres

    @field_validator("keywords", "avoid_topics")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in terms if t.strip()))


class UserReadingPreferences(ReadingPreferences):
    user_id: ExternalId
