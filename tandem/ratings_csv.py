"""Reading interaction CSVs (MovieLens `ratings.csv`, or any `user_id,item_id[,rating],timestamp` file).

Shared by the database importers and by training straight from a file, so both accept the same files.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
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


def read_ratings(path: Path) -> Iterator[Rating]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        user, item = _column(header, USER_COLUMNS, path), _column(header, ITEM_COLUMNS, path)
        time = _column(header, ("timestamp",), path)
        for line, row in enumerate(reader, start=2):
            try:
                rating = float(row["rating"]) if row.get("rating") not in (None, "") else None
                yield Rating(row[user], row[item], rating, parse_time(row[time]))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc


def read_items(path: Path) -> dict[str, ItemInfo]:
    """`item_id|movieId,title[,genres]`; MovieLens genres are `|`-separated."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        item = _column(reader.fieldnames or [], ITEM_COLUMNS, path)
        items = {}
        for row in reader:
            genres = [g for g in (row.get("genres") or "").split("|") if g and g != "(no genres listed)"]
            items[row[item]] = ItemInfo(title=row.get("title") or row[item], genres=genres)
        return items
