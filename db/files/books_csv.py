"""Reading the Aladin bestseller scrape (`aladin_raw_data.csv`) into catalogue books, cleaning its quirks:
a BOM, ISBN-13 written as a float string ("9788959895526.0"), prices like "15,300원", pages as floats,
non-breaking spaces, and several category paths in one cell separated by "접기" (the site's "fold" link).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from db.records import BookIn

REQUIRED = {"title", "author", "introduction", "categories", "isbn", "a_isbn", "item_id"}


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def _number(text: str) -> float | None:
    digits = re.sub(r"[^\d.]", "", text)
    return float(digits) if digits else None


def _int(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None else None


def categories(cell: str) -> list[str]:
    """"국내도서 > 소설/시/희곡 > 추리/미스터리소설 접기국내도서 > …" → one clean path per entry, in order."""
    return list(dict.fromkeys(p for p in (_clean(part) for part in cell.split("접기")) if p))


def external_id(row: dict[str, str]) -> str:
    """The ISBN-13 when there is one, else Aladin's own ISBN-10 style id, else its item id."""
    isbn = _clean(row["isbn"]).removesuffix(".0")
    return isbn or _clean(row["a_isbn"]) or f"aladin:{_clean(row['item_id'])}"


def read_books(path: Path) -> tuple[list[BookIn], int]:
    """The books, one per external id (a later row of the same book wins), and how many rows were repeats."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if missing := REQUIRED - set(reader.fieldnames or []):
            raise ValueError(f"{path}: not an Aladin catalogue CSV; missing columns {sorted(missing)}")
        rows = list(reader)
    books: dict[str, BookIn] = {}
    for row in rows:
        rating = _number(row.get("total_rating", ""))
        book = BookIn(
            external_id=external_id(row),
            title=_clean(row["title"]),
            author=_clean(row["author"]) or None,
            introduction=row["introduction"].replace("\r\n", "\n").strip() or None,
            categories=categories(row["categories"]),
            # Aladin shows 0.0 for a book nobody rated yet.
            rating=rating if rating else None,
            review_count=_int(row.get("review_count", "")),
            pages=_int(row.get("page", "")) or None,
            price=_int(row.get("sale_price", "")),
        )
        books[book.external_id] = book
    return list(books.values()), len(rows) - len(books)
