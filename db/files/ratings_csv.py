"""Reading interaction files: CSVs with a header (MovieLens `ratings.csv`, or any
`user_id,item_id[,rating],timestamp` file) and the older MovieLens releases' headerless files (ML-1M and
ML-10M `ratings.dat` / `movies.dat` with `::`, ML-100K `u.data` with tabs and `u.item` with `|`).

Shared by the database importers and by training straight from a file, so both accept the same files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import zip_longest
from pathlib import Path

USER_COLUMNS = ("user_id", "userId")
ITEM_COLUMNS = ("item_id", "movieId", "itemId")


@dataclass(frozen=True)
class Rating:
    user_id: str
    item_id: str
    rating: float | None
    timestamp: datetime


@dataclass(frozen=True)
class ItemInfo:
    title: str
    genres: list[str] = field(default_factory=list)


def parse_time(value: str) -> datetime:
    """Unix seconds (MovieLens) or ISO 8601; naive times are UTC."""
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except ValueError:
        ts = datetime.fromisoformat(value)
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _column(header: list[str], names: tuple[str, ...], path: Path) -> str:
    for name in names:
        if name in header:
            return name
    raise ValueError(f"{path}: no column named {' or '.join(names)} (columns: {', '.join(header)})")


# The older MovieLens releases: headerless, Latin-1, one layout per separator.
HEADERLESS = re.compile(r"^\d+(::|\t|\|)")
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATING_LAYOUTS = {"::": RATING_COLUMNS, "\t": RATING_COLUMNS}
ITEM_LAYOUTS = {"::": ("item_id", "title", "genres"), "|": ("item_id", "title")}  # u.item's genres are flags


@contextmanager
def _table(path: Path, layouts: dict[str, tuple[str, ...]]) -> Iterator[tuple[list[str], Iterable[tuple[int, dict]]]]:
    """The header and (line number, row) for every data row; a headerless file gets its layout as header."""
    with open(path, encoding="latin-1") as f:
        headerless = HEADERLESS.match(f.readline())
    if headerless and headerless.group(1) in layouts:
        separator = headerless.group(1)
        columns = layouts[separator]
        with open(path, encoding="latin-1") as f:
            yield list(columns), ((line, dict(zip_longest(columns, text.rstrip("\r\n").split(separator), fillvalue="")))
                                  for line, text in enumerate(f, start=1) if text.strip())
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            yield list(reader.fieldnames or []), enumerate(reader, start=2)


def read_ratings(path: Path) -> Iterator[Rating]:
    with _table(path, RATING_LAYOUTS) as (header, rows):
        user, item = _column(header, USER_COLUMNS, path), _column(header, ITEM_COLUMNS, path)
        time = _column(header, ("timestamp",), path)
        for line, row in rows:
            try:
                rating = float(row["rating"]) if row.get("rating") not in (None, "") else None
                yield Rating(row[user], row[item], rating, parse_time(row[time] or ""))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc


def read_items(path: Path) -> dict[str, ItemInfo]:
    """`item_id|movieId,title[,genres]`; MovieLens genres are `|`-separated."""
    with _table(path, ITEM_LAYOUTS) as (header, rows):
        item = _column(header, ITEM_COLUMNS, path)
        items = {}
        for _, row in rows:
            genres = [g for g in (row.get("genres") or "").split("|") if g and g != "(no genres listed)"]
            items[row[item]] = ItemInfo(title=row.get("title") or row[item], genres=genres)
        return items
