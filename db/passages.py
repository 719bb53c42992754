"""Queries the retriever and the retrieval jobs read: the live passage collection and question-answer pairs."""

from __future__ import annotations

import asyncpg

CHANNEL = "passages"


async def passage_ids(conn: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM passages ORDER BY id")]


async def passages(conn: asyncpg.Connection, ids: list[int] | None = None) -> list[asyncpg.Record]:
    """Passages with their document's external id, title and source; all of them, or those in `ids`."""
    return await conn.fetch(
        """SELECT p.id, d.external_id AS document, d.title, d.source, p.text
           FROM passages p JOIN documents d ON d.id = p.document_id
           WHERE $1::bigint[] IS NULL OR p.id = ANY($1::bigint[])
           ORDER BY p.id""",
        ids,
    )


async def qa_pairs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Question-answer pairs tied to a document, in insertion order."""
    return await conn.fetch(
        """SELECT q.question, q.answer, d.external_id AS document
           FROM qa_pairs q JOIN documents d ON d.id = q.document_id ORDER BY q.id"""
    )


async def insert_qa_pairs(conn: asyncpg.Connection, rows: list[tuple[str, str, str]]) -> int:
    """(question, answer, document external id) rows; pairs already stored are skipped. Returns how many were new."""
    before = await conn.fetchval("SELECT count(*) FROM qa_pairs")
    await conn.executemany(
        """INSERT INTO qa_pairs (question, answer, document_id)
           SELECT $1, $2, id FROM documents WHERE external_id = $3
           ON CONFLICT DO NOTHING""",
        rows,
    )
    return await conn.fetchval("SELECT count(*) FROM qa_pairs") - before
