"""Request and response bodies of the book recommender: catalogue search, the LLM's choice and judgement,
and the public recommendation route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from deployments.protocol.retrieval import Mode
from models.books.questions import BookAnswers

Method = Literal["rag", "prompt"]


class BookSearchRequest(BaseModel):
    query: str = Field(min_length=1)
    top_k: int = Field(ge=1, le=100)
    mode: Mode = "hybrid"
    exclude: list[str] = Field(default_factory=list, description="Catalogue ids never to return (books read).")
    avoid_topics: list[str] = Field(default_factory=list,
                                    description="Books whose title, categories or introduction mention one are "
                                                "never returned.")


class CatalogueEntry(BaseModel):
    book_id: str
    title: str
    author: str | None
    categories: list[str]
    introduction: str | None


class CatalogueHit(CatalogueEntry):
    score: float


class CatalogueSearchRequest(BaseModel):
    """The public catalogue search: a query, and optionally a user whose books read and avoided topics are
    left out."""

    query: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Mode = "hybrid"


class BookSearchResponse(BaseModel):
    books: list[CatalogueHit]
    mode: Mode
    catalogue: int = Field(description="Books in the searched catalogue.")
    fallback: str | None = None


class LLMUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class BookPick(BaseModel):
    book_id: str
    reason: str


class BookJudgement(BaseModel):
    score: int = Field(ge=0, le=5, description="The rubric score: the judge's most likely digit.")
    expected_score: float = Field(ge=0, le=5, description="The digits 0-5 weighted by the judge's probabilities.")
    usage: LLMUsage


class QuestionOption(BaseModel):
    key: str
    label: str


class BookQuestion(BaseModel):
    key: str = Field(description="The field of `answers` this question fills.")
    text: str
    examples: list[QuestionOption]


class BookRecommendationRequest(BaseModel):
    user_id: str | None = Field(default=None, min_length=1, max_length=200,
                                description="A user with a reading history and preferences; optional.")
    answers: BookAnswers
    method: Method = Field(default="rag", description="`rag`: a catalogue query enhanced from the reader's "
                           "history and preferences; `prompt`: the raw answers, the profile in the prompt.")
    n: int = Field(default=3, ge=1, le=10)


class BookJudgementRequest(BaseModel):
    """A recommendation to score: the answers, the reader, and the books with their reasons."""

    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    answers: BookAnswers
    books: list[BookPick] = Field(min_length=1, max_length=10)


class RecommendedBook(BaseModel):
    book_id: str
    title: str
    author: str | None
    reason: str | None = Field(description="The LLM's reason; null for a book filled in from the search order.")
    chosen_by: Literal["llm", "search"]


class BookRecommendationResponse(BaseModel):
    books: list[RecommendedBook]
    method: Method
    query: str = Field(description="The catalogue query that found the candidates.")
    candidates: int = Field(description="Candidates the LLM was shown.")
    model: str | None = Field(description="The LLM that chose; null when it failed and the search order was used.")
    adapter_version: str | None
    usage: LLMUsage | None = Field(description="Token counts of the LLM call.")
    mode: Mode
    fallback: str | None = Field(default=None, description="What was not done as asked, and why.")
