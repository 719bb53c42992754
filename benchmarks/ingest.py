"""Interactions ingested per second: over HTTP in batches of 1, 100 and 10,000, against direct COPY.

All in one run, rounds alternating, medians reported. Start the stack first (`make run`), then:

    .venv/bin/python benchmarks/ingest.py

The COPY baseline talks to the same database (DATABASE_URL, or the embedded server under var/).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
import uuid
from datetime import datetime, timezone

import asyncpg
import httpx

from db.interactions import copy_interactions
from db.server import database_url
from ops.stack import api_headers
from tandem.settings import Settings

USERS, ITEMS = 100, 1000
# Rows per measurement for each batch size: enough requests to average over, small enough to finish.
ROWS = {1: 500, 100: 20_000, 10_000: 50_000}
_clock = itertools.count(1)


def rows(n: int, tag: str) -> list[dict]:
    return [
        {"user_id": f"{tag}-u{k % USERS}", "item_id": f"{tag}-i{k % ITEMS}", "rating": k % 5, "timestamp": next(_clock)}
        for k in range(n)
    ]


async def over_http(client: httpx.AsyncClient, batch: int, tag: str) -> float:
    data = rows(ROWS[batch], tag)
    started = time.perf_counter()
    for i in range(0, len(data), batch):
        r = await client.post("/v1/interactions", json={"interactions": data[i : i + batch]})
        r.raise_for_status()
    return len(data) / (time.perf_counter() - started)


async def over_copy(url: str, tag: str) -> float:
    data = [
        (r["user_id"], r["item_id"], float(r["rating"]), None, datetime.fromtimestamp(r["timestamp"], timezone.utc))
        for r in rows(ROWS[10_000], tag)
    ]
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await copy_interactions(conn, data)
        return len(data) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def main(base: str, url: str, repeats: int) -> dict:
    tag = uuid.uuid4().hex[:6]
    results: dict[str, list[float]] = {"copy": [], **{f"http_batch_{b}": [] for b in ROWS}}
    async with httpx.AsyncClient(base_url=base, timeout=300, headers=api_headers()) as client:
        (
            await client.post("/v1/users", json={"users": [{"external_id": f"{tag}-u{k}"} for k in range(USERS)]})
        ).raise_for_status()
        (
            await client.post(
                "/v1/items",
                json={"items": [{"external_id": f"{tag}-i{k}", "title": f"item {k}"} for k in range(ITEMS)]},
            )
        ).raise_for_status()
        for _ in range(repeats):
            results["copy"].append(await over_copy(url, tag))
            for b in ROWS:
                results[f"http_batch_{b}"].append(await over_http(client, b, tag))
    medians = {k: round(statistics.median(v)) for k, v in results.items()}
    return {
        "rows_per_s": medians,
        "ratio_to_copy": {k: round(v / medians["copy"], 3) for k, v in medians.items()},
        "repeats": repeats,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    settings = Settings()
    with database_url(settings.database_url, settings.pgdata_dir) as db:
        print(json.dumps(asyncio.run(main(args.url, db, args.repeats)), indent=2))
