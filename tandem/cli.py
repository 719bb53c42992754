"""The `tandem` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path

from tandem.logs import configure_logging
from tandem.settings import Settings


def cmd_assets_build(settings: Settings, args: argparse.Namespace) -> None:
    from tandem.assets import build_assets

    built = build_assets(settings, force=args.force)
    print(json.dumps({name: str(path) for name, path in built.items()}))


async def _with_connection(settings: Settings, work):
    import asyncpg

    from db.migrate import migrate
    from db.server import database_url

    with database_url(settings.database_url, settings.pgdata_dir) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            return await work(conn)
        finally:
            await conn.close()


def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from db.migrate import migrate

    applied = asyncio.run(_with_connection(settings, migrate))
    print(json.dumps({"applied_now": applied}))


def cmd_db_import(settings: Settings, args: argparse.Namespace) -> None:
    from db.importers import import_ratings

    if args.source == "movielens":
        folder = args.dir or settings.data_dir / "ml-latest-small"
        ratings, items = folder / "ratings.csv", folder / "movies.csv"
    else:
        ratings, items = args.ratings, args.items
    report = asyncio.run(_with_connection(settings, lambda conn: import_ratings(conn, ratings, items)))
    print(json.dumps(dataclasses.asdict(report)))


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from tandem.stack import run

    run(settings)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tandem", description="Tandem: two-stage ML pipelines on Ray Serve.")
    sub = p.add_subparsers(dest="command", required=True)

    assets = sub.add_parser("assets", help="local model assets").add_subparsers(dest="action", required=True)
    build = assets.add_parser("build", help="build the local LLM, BERT and BART folders (idempotent)")
    build.add_argument("--force", action="store_true", help="rebuild even if a folder is already built")
    build.set_defaults(func=cmd_assets_build)

    db = sub.add_parser("db", help="the database").add_subparsers(dest="action", required=True)
    db.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)
    imp = db.add_parser("import", help="bulk-import interactions").add_subparsers(dest="source", required=True)
    ml = imp.add_parser("movielens", help="MovieLens ratings.csv + movies.csv")
    ml.add_argument("--dir", type=Path, help="folder with ratings.csv and movies.csv (default: ml-latest-small)")
    ml.set_defaults(func=cmd_db_import)
    gen = imp.add_parser("csv", help="user_id,item_id,rating,timestamp with an optional items CSV of item_id,title")
    gen.add_argument("--ratings", type=Path, required=True)
    gen.add_argument("--items", type=Path)
    gen.set_defaults(func=cmd_db_import)

    run = sub.add_parser("run", help="start PostgreSQL, Ray and the Serve application; Ctrl-C stops all")
    run.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    args.func(settings, args)


if __name__ == "__main__":
    main()
