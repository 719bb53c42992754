"""Bulk importers (`tandem db import ...`): CSV files into users, items and interactions, with progress."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
from rich.progress import Progress

from db.interactions import copy_interactions, upsert_items
from db.records import ItemIn, UserIn
from db.users import upsert_users

CHUNK = 10_000
USER_COLUMNS = ("user_id", "userId")
ITEM_COLUMNS = ("item_id", "movieId", "itemId")


@dataclass
class ImportReport:
    users: int
    items: int
    interactions_read: int
    interactions_new: int


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


def read_ratings(path: Path) -> Iterator[tuple[str, str, float | None, None, datetime]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        user, item = _column(header, USER_COLUMNS, path), _column(header, ITEM_COLUMNS, path)
        time = _column(header, ("timestamp",), path)
        for line, row in enumerate(reader, start=2):
            try:
                rating = float(row["rating"]) if row.get("rating") not in (None, "") else None
                yield row[user], row[item], rating, None, parse_time(row[time])
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc


def read_items(path: Path) -> dict[str, ItemIn]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        item = _column(reader.fieldnames or [], ITEM_COLUMNS, path)
        items = {}
        for row in reader:
            genres = [g for g in row.get("genres", "").split("|") if g and g != "(no genres listed)"]
            items[row[item]] = ItemIn(
                external_id=row[item], title=row["title"] or row[item], attributes={"genres": genres} if genres else {}
            )
        return items


async def import_ratings(conn: asyncpg.Connection, ratings: Path, items_csv: Path | None = None) -> ImportReport:
    """Users and items first (items without a title in `items_csv` are titled by their id), then interactions."""
    rows = list(read_ratings(ratings))
    items = read_items(items_csv) if items_csv else {}
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
