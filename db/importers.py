"""Bulk importers (`tandem db import ...`): ratings, KorQuAD and the book catalogue into the database, with
progress."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from rich.progress import Progress

from db.books import upsert_books
from db.documents import upsert_documents
from db.files.books_csv import read_books
from db.files.ratings_csv import read_items, read_ratings
from db.interactions import copy_interactions, upsert_items
from db.passages import insert_qa_pairs
from db.records import DocumentIn, ItemIn, UserIn
from db.users import upsert_users

CHUNK = 10_000


@dataclass
class ImportReport:
    users: int
    items: int
    interactions_read: int
    interactions_new: int


async def import_ratings(conn: asyncpg.Connection, ratings: Path, items_csv: Path | None = None) -> ImportReport:
    """Users and items first (items without a title in `items_csv` are titled by their id), then interactions."""
    rows = [(r.user_id, r.item_id, r.rating, None, r.timestamp) for r in read_ratings(ratings)]
    known = read_items(items_csv) if items_csv else {}
    items = {
        i: ItemIn(external_id=i, title=info.title, attributes={"genres": info.genres} if info.genres else {})
        for i, info in known.items()
    }
    for _, item_id, *_ in rows:
        items.setdefault(item_id, ItemIn(external_id=item_id, title=item_id))
    user_ids = sorted({r[0] for r in rows})
    with Progress() as progress:
        task = progress.add_task("users", total=len(user_ids))
        for i in range(0, len(user_ids), CHUNK):
            chunk = user_ids[i : i + CHUNK]
            await upsert_users(conn, [UserIn(external_id=u) for u in chunk])
            progress.advance(task, len(chunk))
        task = progress.add_task("items", total=len(items))
        records = list(items.values())
        for i in range(0, len(records), CHUNK):
            await upsert_items(conn, records[i : i + CHUNK])
            progress.advance(task, len(records[i : i + CHUNK]))
        task = progress.add_task("interactions", total=len(rows))
        new = 0
        for i in range(0, len(rows), CHUNK * 5):
            chunk = rows[i : i + CHUNK * 5]
            new += await copy_interactions(conn, chunk)
            progress.advance(task, len(chunk))
    return ImportReport(users=len(user_ids), items=len(items), interactions_read=len(rows), interactions_new=new)


@dataclass
class KorQuADReport:
    documents: int
    passages: int
    questions_read: int
    questions_new: int


async def import_korquad(conn: asyncpg.Connection, path: Path) -> KorQuADReport:
    """A KorQuAD 1.0 file, unmodified: each article a document, its paragraphs the passages, each question
    with its first answer a qa pair of that document."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    docs, qas, seen = [], [], set()
    for n, article in enumerate(articles):
        external_id = f"korquad:{article['title']}"
        if external_id in seen:
            external_id = f"{external_id}#{n}"
        seen.add(external_id)
        docs.append(DocumentIn(external_id=external_id, title=article["title"],
                               source=f"KorQuAD 1.0 (CC BY-ND 2.0 KR), {article['title']}",
                               passages=[p["context"] for p in article["paragraphs"]]))
        qas += [(qa["question"], qa["answers"][0]["text"], external_id)
                for p in article["paragraphs"] for qa in p["qas"] if qa["answers"]]
    with Progress() as progress:
        task = progress.add_task("documents", total=len(docs))
        async with conn.transaction():
            for i in range(0, len(docs), 50):
                await upsert_documents(conn, docs[i : i + 50])
                progress.advance(task, len(docs[i : i + 50]))
        task = progress.add_task("questions", total=len(qas))
        new = 0
        for i in range(0, len(qas), 1000):
            new += await insert_qa_pairs(conn, qas[i : i + 1000])
            progress.advance(task, len(qas[i : i + 1000]))
    return KorQuADReport(documents=len(docs), passages=sum(len(d.passages) for d in docs),
                         questions_read=len(qas), questions_new=new)


@dataclass
class BooksReport:
    rows_repeated: int
    books: int
    created: int
    updated: int
    unchanged: int


async def import_books(conn: asyncpg.Connection, path: Path) -> BooksReport:
    """The Aladin catalogue CSV, cleaned (`db.files.books_csv`), upserted by ISBN in one transaction."""
    books, repeated = read_books(path)
    with Progress() as progress:
        task = progress.add_task("books", total=len(books))
        totals = {"created": 0, "updated": 0, "unchanged": 0}
        async with conn.transaction():
            for i in range(0, len(books), 200):
                result = await upsert_books(conn, books[i : i + 200])
                totals = {k: v + getattr(result, k) for k, v in totals.items()}
                progress.advance(task, len(books[i : i + 200]))
    return BooksReport(rows_repeated=repeated, books=len(books), **totals)
