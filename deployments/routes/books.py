"""The emotion-based book recommender: its five questions, catalogue search, recommendations and judgements."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from deployments.http_errors import error_response
from deployments.pipelines.books import judge_books, recommend_books, search_catalogue
from deployments.protocol.books import (
    BookJudgement,
    BookJudgementRequest,
    BookQuestion,
    BookRecommendationRequest,
    BookRecommendationResponse,
    BookSearchResponse,
    CatalogueSearchRequest,
    QuestionOption,
)
from deployments.routes.common import Served, allowed, answered, errors, needs
from models.books.questions import QUESTIONS

router = APIRouter(prefix="/v1/books", tags=["books"], dependencies=[allowed("inference")],
                   responses=errors(401, 403))


@router.get("/questions", response_model=list[BookQuestion],
            summary="The five questions of the book recommender, each with example answers.")
async def book_questions() -> list[BookQuestion]:
    return [BookQuestion(key=q.key, text=q.text, examples=[QuestionOption(key=o.key, label=o.label)
                                                           for o in q.options]) for q in QUESTIONS]


@router.post("/search", dependencies=[needs("retriever")], response_model=BookSearchResponse,
             responses=errors(404, 422, 503),
             summary="Catalogue books for a query (dense + BM25); with `user_id`, never a book the user read or one "
                     "on a topic they avoid.")
async def book_search(request: CatalogueSearchRequest, services: Served):
    return answered(await search_catalogue(request, services))


@router.post("/recommendations", dependencies=[needs("retriever")], response_model=BookRecommendationResponse,
             responses=errors(404, 422, 503),
             summary="n catalogue books for the five answers (and a user's reading life), chosen by the LLM among "
                     "retrieved candidates with a reason each; never a book read or one on an avoided topic.")
async def book_recommendations(request: BookRecommendationRequest, services: Served):
    return answered(await recommend_books(request, services))


@router.post("/judgements", dependencies=[needs("llm")], response_model=BookJudgement,
             responses=errors(404, 422, 502, 503),
             summary="Score a book recommendation 0-5 against a fixed rubric, by the LLM in a separate call "
                     "(the seed project's evaluation).")
async def book_judgements(request: BookJudgementRequest, services: Served):
    try:
        return answered(await judge_books(request, services))
    except asyncio.TimeoutError:
        return error_response(503, f"judging took longer than {services.settings.books_timeout_s:g} s",
                              "service_unavailable")
