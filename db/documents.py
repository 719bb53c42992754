"""Queries for documents and their passages (the RAG collection)."""

from __future__ import annotations

import asyncpg

from db.errors import NotFound
from db.records import Document, DocumentIn, UpsertResult
from db.upsert import Column, upsert

DOCUMENT_COLUMNS = [Column("external_id"), Column("title"), Column("source")]


async def upsert_documents(conn: asyncpg.Connection, documents: list[DocumentIn]) -> UpsertResult:
    """Upsert documents and replace the passages of those whose passages changed; call in a transaction."""
    result = await upsert(
        conn, "documents", DOCUMENT_COLUMNS, [d.model_dump(exclude={"text", "passages"}) for d in documents]
    )
    changed_passages = 0
    for doc in {d.external_id: d for d in documents}.values():
        doc_id = await conn.fetchval("SELECT id FROM documents WHERE external_id = $1", doc.external_id)
        stored = [
            r["text"]
            for r in await conn.fetch("SELECT text FROM passages WHERE document_id = $1 ORDER BY chunk_no", doc_id)
        ]
        if stored == doc.passages:
            continue
        changed_passages += 1
        await conn.execute("DELETE FROM passages WHERE document_id = $1", doc_id)
        await conn.copy_records_to_table(
            "passages",
            columns=["document_id", "chunk_no", "text"],
            records=[(doc_id, n, text) for n, text in enumerate(doc.passages)],
        )
        await conn.execute("UPDATE documents SET updated_at = now() WHERE id = $1", doc_id)
    # A document whose metadata stayed but whose passages changed was updated, not unchanged.
    moved = min(result.unchanged, changed_passages)
    return result.model_copy(update={"updated": result.updated + moved, "unchanged": result.unchanged - moved})


async def get_document(conn: asyncpg.Connection, external_id: str) -> Document:
    row = await conn.fetchrow(
        """SELECT d.external_id, d.title, d.source, d.created_at, d.updated_at,
                  coalesce(array_agg(p.text ORDER BY p.chunk_no) FILTER (WHERE p.id IS NOT NULL), '{}') AS passages
           FROM documents d LEFT JOIN passages p ON p.document_id = d.id
           WHERE d.external_id = $1 GROUP BY d.id""",
        external_id,
    )
    if row is None:
        raise NotFound(f"unknown document id: {external_id!r}")
    return Document(**row)


async def list_documents(conn: asyncpg.Connection, *, after: str | None, limit: int) -> list[Document]:
    rows = await conn.fetch(
        """SELECT d.external_id, d.title, d.source, d.created_at, d.updated_at,
                  coalesce(array_agg(p.text ORDER BY p.chunk_no) FILTER (WHERE p.id IS NOT NULL), '{}') AS passages
           FROM documents d LEFT JOIN passages p ON p.document_id = d.id
           WHERE $1::text IS NULL OR d.external_id > $1
           GROUP BY d.id ORDER BY d.external_id LIMIT $2""",
        after,
        limit,
    )
    return [Document(**r) for r in rows]
