"""The book pipeline: the reader from the database, a catalogue search that never returns a book read or an
avoided topic, and the LLM choosing n of the candidates with reasons.

`rag` searches the reader's history for the books that matter to these answers and builds an enhanced
query from them and the preferences; `prompt` searches with the answers alone and puts the whole profile in
the prompt. The LLM's choice is constrained to the candidates' ids; when it fails or runs out of time the
search order answers, flagged, so the endpoint degrades instead of failing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from db import books as catalogue
from db import reading
from db.pool import Database
from db.users import get_user
from deployments.pipelines.calls import call
from deployments.pipelines.llm_stage import llm_stage
from deployments.pipelines.services import Services
from deployments.protocol.books import (
    BookJudgement,
    BookJudgementRequest,
    BookPick,
    BookRecommendationRequest,
    BookRecommendationResponse,
    BookSearchRequest,
    BookSearchResponse,
    CatalogueEntry,
    CatalogueHit,
    CatalogueSearchRequest,
    LLMUsage,
    RecommendedBook,
)
from deployments.protocol.llm import Generate, LabelScores, ScoreLabels
from deployments.protocol.service_error import ServiceError
from deployments.telemetry import pipeline_metrics
from models.books.catalogue import CatalogueBook
from models.books.profile import ReadBook, Reader, describe, enhanced_query, raw_query, relevant_history
from models.books.prompts import choice_schema, judged_scores, parse_choice

PIPELINE = "books"
ADAPTER = "books"


@dataclass(frozen=True)
class Choice:
    picks: list[BookPick]  # distinct candidates in the LLM's order
    candidates_shown: int  # candidates that fitted the prompt
    model: str
    adapter_version: str | None
    usage: LLMUsage


def catalogue_book(entry: CatalogueEntry) -> CatalogueBook:
    return CatalogueBook(entry.book_id, entry.title, entry.author, tuple(entry.categories), entry.introduction)


async def load_reader(db: Database, user_id: str | None) -> tuple[Reader, list[str]]:
    """The reader's profile, and the catalogue ids of the books they have read."""
    if user_id is None:
        return Reader(), []
    async with db.acquire() as conn:
        user = await get_user(conn, user_id)
        history = await reading.reading_history(conn, user_id)
        prefs = await reading.preferences(conn, user_id)
    books = tuple(ReadBook(e.title, e.author, e.rating, e.review, tuple(e.genres)) for e in history)
    reader = Reader(job=user.job, history=books, genres=prefs.genres, reading_style=prefs.reading_style,
                    keywords=tuple(prefs.keywords), avoid_topics=tuple(prefs.avoid_topics))
    return reader, [e.book_id for e in history if e.book_id]


async def search_catalogue(request: CatalogueSearchRequest, services: Services) -> BookSearchResponse | ServiceError:
    reader, read = await load_reader(services.db, request.user_id)
    return await call(services.retriever.search_books, BookSearchRequest(
        query=request.query, top_k=request.top_k, mode=request.mode, exclude=read,
        avoid_topics=list(reader.avoid_topics)))


def query_and_reader(request: BookRecommendationRequest, reader: Reader, history_k: int) -> tuple[str, str]:
    """The catalogue query and the reader as the LLM sees them, per method."""
    if request.method == "rag":
        history = relevant_history(reader, request.answers, history_k)
        return enhanced_query(request.answers, reader, history), describe(reader, history)
    return raw_query(request.answers), describe(reader, reader.history)


async def choose(services: Services, request: BookRecommendationRequest, reader: str,
                 candidates: list[CatalogueHit]) -> Choice | ServiceError:
    """n of the candidates with a reason each, as JSON constrained to the candidates' ids (the `books` adapter,
    or the base model until one is trained)."""
    prompt, shown = services.prompts.books.choose(request.answers, reader, [catalogue_book(c) for c in candidates],
                                                  request.n)
    ids = [b.id for b in shown]
    schema = choice_schema(ids, min(request.n, len(ids)), services.settings.books_reason_chars)
    generated = await call(services.llm.generate, Generate(prompt=services.prompts.encode(prompt), json_schema=schema,
                                                           adapter=ADAPTER, kind="books"))
    if isinstance(generated, ServiceError):
        return generated
    try:
        picks = parse_choice(generated.text, ids)
    except ValueError as exc:
        return ServiceError(status=502, type="llm_error", message=str(exc))
    return Choice(picks=[BookPick(book_id=p.book_id, reason=p.reason) for p in picks], candidates_shown=len(shown),
                  model=generated.model, adapter_version=generated.adapter_version,
                  usage=LLMUsage(prompt_tokens=generated.prompt_tokens,
                                 completion_tokens=generated.completion_tokens))


def recommended(choice: Choice | None, candidates: list[CatalogueHit], n: int) -> list[RecommendedBook]:
    """The LLM's picks, then candidates in search order until there are n (or no more)."""
    by_id = {c.book_id: c for c in candidates}
    books = [RecommendedBook(book_id=p.book_id, title=by_id[p.book_id].title, author=by_id[p.book_id].author,
                             reason=p.reason, chosen_by="llm") for p in (choice.picks if choice else [])]
    taken = {b.book_id for b in books}
    books += [RecommendedBook(book_id=c.book_id, title=c.title, author=c.author, reason=None, chosen_by="search")
              for c in candidates if c.book_id not in taken]
    return books[:n]


async def recommend_books(request: BookRecommendationRequest, services: Services,
                          ) -> BookRecommendationResponse | ServiceError:
    settings = services.settings
    reader, read = await load_reader(services.db, request.user_id)
    query, reader_text = query_and_reader(request, reader, settings.books_history_k)
    metrics = pipeline_metrics()
    found = await metrics.timed(PIPELINE, "retrieval", call(services.retriever.search_books, BookSearchRequest(
        query=query, top_k=max(settings.books_candidates, request.n), mode=settings.books_mode, exclude=read,
        avoid_topics=list(reader.avoid_topics))))
    if isinstance(found, ServiceError):
        return found
    if found.catalogue == 0:
        return ServiceError(status=503, type="service_unavailable",
                            message="the book catalogue is empty: add books (POST /v1/books or "
                                    "`tandem db import-books`)")
    notes = [found.fallback] if found.fallback else []
    if found.fallback:
        metrics.fallback(PIPELINE, "retrieval")
    choice = None
    if found.books:
        chosen = await llm_stage(PIPELINE, "generation", lambda: choose(services, request, reader_text, found.books),
                                 settings.books_timeout_s, services.llm_down())
        if isinstance(chosen, str):
            notes.append(chosen)
        else:
            choice = chosen
            if len(choice.picks) < request.n:
                notes.append(f"the LLM chose {len(choice.picks)} distinct books of {request.n}; the rest follow "
                             "the search order")
    else:
        notes.append("no catalogue book matched the answers outside the books read and the topics avoided")
    return BookRecommendationResponse(
        books=recommended(choice, found.books, request.n), method=request.method, query=query,
        candidates=choice.candidates_shown if choice else len(found.books),
        model=choice.model if choice else None, adapter_version=choice.adapter_version if choice else None,
        usage=choice.usage if choice else None, mode=found.mode, fallback="; ".join(notes) or None)


async def judge_books(request: BookJudgementRequest, services: Services) -> BookJudgement | ServiceError:
    """The recommendation scored 0-5 against the fixed rubric by the base model, in a call of its own: one
    forward pass, the score read from the digits' next-token probabilities."""
    reader, _ = await load_reader(services.db, request.user_id)
    async with services.db.acquire() as conn:
        books = [await catalogue.get_book(conn, pick.book_id) for pick in request.books]
    chosen = [(CatalogueBook(b.external_id, b.title, b.author, tuple(b.categories), b.introduction), pick.reason)
              for b, pick in zip(books, request.books, strict=True)]
    prompt = services.prompts.encode(services.prompts.books.judge(request.answers, describe(reader, reader.history),
                                                                  chosen))
    scored: LabelScores | ServiceError = await asyncio.wait_for(call(services.llm.score_labels, ScoreLabels(
        prompt=prompt, labels=services.prompts.score_ids, adapter_version=None, kind="judge")),
        timeout=services.settings.books_timeout_s)
    if isinstance(scored, ServiceError):
        return scored
    score, expected = judged_scores(scored.logprobs)
    return BookJudgement(score=score, expected_score=round(expected, 4),
                         usage=LLMUsage(prompt_tokens=scored.prompt_tokens, completion_tokens=0))
