"""Ingestion routes: every pipeline's data goes into PostgreSQL through these, in batches, all or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from db import books, documents, idempotency, interactions, reading, users
from db.pool import Database
from db.records import (
    Book,
    BookBatch,
    Document,
    DocumentBatch,
    InsertResult,
    Interaction,
    InteractionBatch,
    Item,
    ItemBatch,
    ReadingEntry,
    ReadingHistoryBatch,
    ReadingPreferences,
    Survey,
    SurveyBatch,
    UpsertResult,
    User,
    UserBatch,
    UserReadingPreferences,
)
from deployments.protocol.service_error import ErrorResponse
from deployments.routes.common import allowed, errors, get_services

router = APIRouter(prefix="/v1", tags=["ingestion"], dependencies=[allowed("admin")], responses=errors(401, 403))

ERRORS = {code: {"model": ErrorResponse} for code in (404, 409, 413, 422, 503)}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Send a retried request again with the same key: "
        "it is answered as the first time and writes nothing twice.",
    ),
]
After = Annotated[str | None, Query(description="Keyset pagination: the last external id of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def get_db() -> Database:
    return get_services().db


DB = Annotated[Database, Depends(get_db)]


async def write(
    db: Database, endpoint: str, body: BaseModel, key: str | None, work: Callable[[asyncpg.Connection], Awaitable]
):
    """Run `work` in one transaction; with an idempotency key, replay the stored answer instead of writing again."""
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    async with db.acquire() as conn, conn.transaction():
        if key is not None and (stored := await idempotency.claim(conn, key, endpoint, digest)) is not None:
            status, answer = stored
            return JSONResponse(answer, status_code=status, headers={"Idempotency-Replayed": "true"})
        result = await work(conn)
        if key is not None:
            await idempotency.record(conn, key, 200, result.model_dump(mode="json"))
    return result


class SurveyResult(BaseModel):
    received: int
    inserted: int


# --- users and surveys -------------------------------------------------------------------------


@router.post("/users", response_model=UpsertResult, responses=ERRORS, summary="Upsert users by external id.")
async def post_users(batch: UserBatch, db: DB, key: IdempotencyKey = None):
    return await write(db, "/v1/users", batch, key, lambda conn: users.upsert_users(conn, batch.users))


@router.get("/users", response_model=list[User], responses=ERRORS)
async def list_users(db: DB, after: After = None, limit: Limit = 100):
    async with db.acquire() as conn:
        return await users.list_users(conn, after=after, limit=limit)


@router.get("/users/{external_id:path}", response_model=User, responses=ERRORS)
async def get_user(external_id: str, db: DB):
    async with db.acquire() as conn:
        return await users.get_user(conn, external_id)


@router.post("/surveys", response_model=SurveyResult, responses=ERRORS, summary="Store survey answers of users.")
async def post_surveys(batch: SurveyBatch, db: DB, key: IdempotencyKey = None):
    async def work(conn):
        n = await users.add_surveys(conn, batch.surveys)
        return SurveyResult(received=len(batch.surveys), inserted=n)

    return await write(db, "/v1/surveys", batch, key, work)


@router.get("/surveys", response_model=list[Survey], responses=ERRORS, summary="A user's survey answers, newest first.")
async def list_surveys(
    db: DB, user_id: str, kind: Literal["profile", "book_emotion"] | None = None, limit: Limit = 100
):
    async with db.acquire() as conn:
        return await users.list_surveys(conn, user_id, kind, limit)


# --- items and interactions --------------------------------------------------------------------


@router.post("/items", response_model=UpsertResult, responses=ERRORS, summary="Upsert items by external id.")
async def post_items(batch: ItemBatch, db: DB, key: IdempotencyKey = None):
    return await write(db, "/v1/items", batch, key, lambda conn: interactions.upsert_items(conn, batch.items))


@router.get("/items", response_model=list[Item], responses=ERRORS)
async def list_items(db: DB, after: After = None, limit: Limit = 100):
    async with db.acquire() as conn:
        return await interactions.list_items(conn, after=after, limit=limit)


@router.get("/items/{external_id:path}", response_model=Item, responses=ERRORS)
async def get_item(external_id: str, db: DB):
    async with db.acquire() as conn:
        return await interactions.get_item(conn, external_id)


@router.post(
    "/interactions",
    response_model=InsertResult,
    responses=ERRORS,
    summary="Add up to 10,000 interactions, all or nothing; users and items must exist.",
)
async def post_interactions(batch: InteractionBatch, db: DB, key: IdempotencyKey = None):
    return await write(
        db, "/v1/interactions", batch, key, lambda conn: interactions.insert_interactions(conn, batch.interactions)
    )


@router.get(
    "/interactions", response_model=list[Interaction], responses=ERRORS, summary="A user's interactions in time order."
)
async def list_interactions(
    db: DB, user_id: str, since: datetime | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
):
    async with db.acquire() as conn:
        return await interactions.user_history(conn, user_id, since=since, limit=limit)


# --- books and documents -------------------------------------------------------------------------


@router.post("/books", response_model=UpsertResult, responses=ERRORS, summary="Upsert catalogue books.")
async def post_books(batch: BookBatch, db: DB, key: IdempotencyKey = None):
    return await write(db, "/v1/books", batch, key, lambda conn: books.upsert_books(conn, batch.books))


@router.get("/books", response_model=list[Book], responses=ERRORS)
async def list_books(db: DB, after: After = None, limit: Limit = 100):
    async with db.acquire() as conn:
        return await books.list_books(conn, after=after, limit=limit)


@router.get("/books/{external_id:path}", response_model=Book, responses=ERRORS)
async def get_book(external_id: str, db: DB):
    async with db.acquire() as conn:
        return await books.get_book(conn, external_id)


class ReadingResult(BaseModel):
    received: int
    written: int


@router.post("/reading-history", response_model=ReadingResult, responses=ERRORS,
             summary="Add or update books a user has read (by title); catalogue books by id or exact title.")
async def post_reading_history(batch: ReadingHistoryBatch, db: DB, key: IdempotencyKey = None):
    async def work(conn):
        n = await reading.add_reading(conn, batch.user_id, batch.entries)
        return ReadingResult(received=len(batch.entries), written=n)

    return await write(db, "/v1/reading-history", batch, key, work)


@router.get("/reading-history", response_model=list[ReadingEntry], responses=ERRORS,
            summary="A user's reading history, most recent first.")
async def get_reading_history(db: DB, user_id: str):
    async with db.acquire() as conn:
        return await reading.reading_history(conn, user_id)


@router.put("/reading-preferences", response_model=UserReadingPreferences, responses=ERRORS,
            summary="Replace a user's reading preferences: genre weights, style, keywords, topics to avoid.")
async def put_reading_preferences(prefs: UserReadingPreferences, db: DB, key: IdempotencyKey = None):
    async def work(conn):
        await reading.set_preferences(conn, prefs.user_id, prefs)
        return prefs

    return await write(db, "/v1/reading-preferences", prefs, key, work)


@router.get("/reading-preferences", response_model=ReadingPreferences, responses=ERRORS)
async def get_reading_preferences(db: DB, user_id: str):
    async with db.acquire() as conn:
        return await reading.preferences(conn, user_id)


@router.post(
    "/documents", response_model=UpsertResult, responses=ERRORS, summary="Upsert documents with their passages."
)
async def post_documents(batch: DocumentBatch, db: DB, key: IdempotencyKey = None):
    return await write(db, "/v1/documents", batch, key, lambda conn: documents.upsert_documents(conn, batch.documents))


@router.get("/documents", response_model=list[Document], responses=ERRORS)
async def list_documents(db: DB, after: After = None, limit: Limit = 100):
    async with db.acquire() as conn:
        return await documents.list_documents(conn, after=after, limit=limit)


@router.get("/documents/{external_id:path}", response_model=Document, responses=ERRORS)
async def get_document(external_id: str, db: DB):
    async with db.acquire() as conn:
        return await documents.get_document(conn, external_id)
