"""Importers load real MovieLens and generic CSVs, idempotently, and name what is wrong with a bad file."""

import asyncio
from pathlib import Path

import asyncpg
import pytest

from db.importers import import_books, import_korquad, import_ratings
from db.migrate import migrate
from tandem.settings import Settings


async def _import(url: str, ratings: Path, items: Path | None):
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        report = await import_ratings(conn, ratings, items)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items), (SELECT count(*) FROM interactions)"
        )
        title = await conn.fetchval("SELECT title FROM items WHERE external_id = '1'")
        return report, tuple(counts), title
    finally:
        await conn.close()


def test_movielens_import_is_complete_and_idempotent(fresh_db: str, base_settings: Settings) -> None:
    folder = base_settings.data_dir / "ml-latest-small"
    report, counts, title = asyncio.run(_import(fresh_db, folder / "ratings.csv", folder / "movies.csv"))
    assert counts == (610, 9742, 100_836)
    assert report.interactions_new == 100_836
    assert title == "Toy Story (1995)"
    again, counts_again, _ = asyncio.run(_import(fresh_db, folder / "ratings.csv", folder / "movies.csv"))
    assert again.interactions_new == 0 and counts_again == counts


def test_generic_csv_with_and_without_titles(fresh_db: str, tmp_path: Path) -> None:
    ratings = tmp_path / "r.csv"
    ratings.write_text(
        "user_id,item_id,rating,timestamp\nu1,a,4.5,2024-01-01T10:00:00\nu1,b,,1700000000\nu2,a,3,1700000001\n"
    )
    items = tmp_path / "i.csv"
    items.write_text("item_id,title\na,Apple\n")
    report, counts, _ = asyncio.run(_import(fresh_db, ratings, items))
    assert counts == (2, 2, 3) and report.interactions_new == 3

    async def titles():
        conn = await asyncpg.connect(fresh_db)
        try:
            return dict(await conn.fetch("SELECT external_id, title FROM items"))
        finally:
            await conn.close()

    assert asyncio.run(titles()) == {"a": "Apple", "b": "b"}


def test_bad_csv_names_the_problem(fresh_db: str, tmp_path: Path) -> None:
    no_item = tmp_path / "a.csv"
    no_item.write_text("user,product,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match="no column named user_id or userId"):
        asyncio.run(_import(fresh_db, no_item, None))
    bad_time = tmp_path / "b.csv"
    bad_time.write_text("user_id,item_id,timestamp\n1,2,yesterday\n")
    with pytest.raises(ValueError, match=r"b.csv:2"):
        asyncio.run(_import(fresh_db, bad_time, None))


def test_korquad_import_keeps_articles_paragraphs_and_questions(fresh_db: str, base_settings: Settings) -> None:
    async def run():
        conn = await asyncpg.connect(fresh_db)
        try:
            await migrate(conn)
            path = base_settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
            first, second = await import_korquad(conn, path), await import_korquad(conn, path)
            counts = await conn.fetchrow("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM passages), "
                                         "(SELECT count(*) FROM qa_pairs)")
            pair = await conn.fetchrow("""SELECT q.answer, d.external_id FROM qa_pairs q JOIN documents d
                                          ON d.id = q.document_id WHERE q.question LIKE '임종석이 여의도%'""")
            return first, second, tuple(counts), pair
        finally:
            await conn.close()

    first, second, counts, pair = asyncio.run(run())
    assert (first.documents, first.passages, first.questions_read) == (140, 964, 5774)
    # A few questions repeat with the same answer in the same article: stored once.
    assert counts == (140, 964, first.questions_new) and first.questions_new > 5700
    assert second.questions_new == 0
    assert tuple(pair) == ("1989년 2월 15일", "korquad:임종석")


def test_aladin_catalogue_import_cleans_its_quirks(fresh_db: str, base_settings: Settings) -> None:
    path = base_settings.data_dir / "books" / "aladin_raw_data.csv"

    async def run():
        conn = await asyncpg.connect(fresh_db)
        try:
            await migrate(conn)
            first = await import_books(conn, path)
            again = await import_books(conn, path)
            row = await conn.fetchrow("SELECT * FROM books WHERE external_id = '9788959895526'")
            odd = await conn.fetchval(
                """SELECT count(*) FROM books WHERE external_id LIKE '%.0' OR title <> btrim(title)
                   OR EXISTS (SELECT 1 FROM unnest(categories) c WHERE c LIKE '%접기%' OR c LIKE '%' || chr(160) || '%'
                              OR c <> btrim(c))""")
            return first, again, row, odd
        finally:
            await conn.close()

    first, again, row, odd = asyncio.run(run())
    # 820 rows, 13 of them a bestseller of another year already listed.
    assert (first.books, first.rows_repeated, first.created) == (807, 13, 807)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 807)
    assert row["title"] == "트렌드 코리아 2019" and row["price"] == 15300 and row["pages"] == 456
    assert row["categories"][0] == "국내도서 > 경제경영 > 트렌드/미래전망 > 트렌드/미래전망 일반"
    assert len(row["categories"]) == 4 and abs(row["rating"] - 8.2) < 1e-6
    assert odd == 0
