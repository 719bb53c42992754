"""The `tandem` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path

from ops.cli_keys import add_keys_commands
from ops.cli_models import add_models_commands
from ops.cli_training import add_training_commands
from tandem.logs import configure_logging
from tandem.settings import Settings


def cmd_assets_build(settings: Settings, args: argparse.Namespace) -> None:
    from ops.assets import build_assets

    built = build_assets(settings, force=args.force)
    print(json.dumps({name: str(path) for name, path in built.items()}))


def _with_connection(settings: Settings, work):
    from db.server import on_database

    return on_database(settings.database_url, settings.pgdata_dir, work)


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


def cmd_db_import_korquad(settings: Settings, args: argparse.Namespace) -> None:
    from db.importers import import_korquad

    path = args.path or settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
    report = asyncio.run(_with_connection(settings, lambda conn: import_korquad(conn, path)))
    print(json.dumps(dataclasses.asdict(report)))


def cmd_db_import_books(settings: Settings, args: argparse.Namespace) -> None:
    from db.importers import import_books

    path = args.path or settings.data_dir / "books" / "aladin_raw_data.csv"
    report = asyncio.run(_with_connection(settings, lambda conn: import_books(conn, path)))
    print(json.dumps(dataclasses.asdict(report)))


def cmd_db_import_keywords(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from training.keywords import (
        SILVER,
        SILVER_SENTENCES,
        read_tsv,
        silver_pairs,
        silver_sentence_pairs,
        store_pairs,
    )

    korquad = settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
    if args.tsv:
        sets = {f"tsv:{args.tsv.name}": read_tsv(args.tsv)}
    else:
        sets = {SILVER: silver_pairs(korquad), SILVER_SENTENCES: silver_sentence_pairs(korquad)}
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        stored = {source: asyncio.run(store_pairs(url, pairs, source)) for source, pairs in sets.items()}
    print(json.dumps({"pairs": stored}, ensure_ascii=False))


def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> None:
    from rich.console import Console

    from db.server import database_url
    from training.bootstrap import run_bootstrap

    console = Console(stderr=True)
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        outcome = run_bootstrap(settings, url, again=True,
                                on_step=lambda name, status: console.print(f"bootstrap  {name} {status}"))
    print(json.dumps(outcome))


def cmd_bench_load(settings: Settings, args: argparse.Namespace) -> None:
    from ops.loadtest import load, parse_steps, plot, summary, workloads
    from ops.stack import api_headers

    known = workloads(settings.data_dir)
    if args.endpoint not in known:
        raise ValueError(f"no workload {args.endpoint!r}; choose one of {', '.join(known)}")
    closed = args.concurrency is not None
    steps = parse_steps(args.concurrency if closed else args.rate, args.duration)
    run = asyncio.run(load(args.url, known[args.endpoint], steps, closed, args.max_requests, args.timeout,
                           args.seed, args.metrics_url, api_headers()))
    report = {"endpoint": args.endpoint, "loop": "closed" if closed else "open", **summary(run, steps)}
    if args.plot:
        level = "clients" if closed else "arrivals/s"
        plot(run, steps, f"{args.endpoint}, {report['loop']} loop", level, args.plot)
        report["plot"] = str(args.plot)
    print(json.dumps(report))


def cmd_cluster_smoke(settings: Settings, args: argparse.Namespace) -> None:
    from ops.cluster_smoke import cluster_smoke

    report = cluster_smoke(settings, args.config)
    print(json.dumps(report))
    if not report["ok"]:
        raise SystemExit(1)


def cmd_ray_env(settings: Settings, args: argparse.Namespace) -> None:
    from ops.serve_mode import node_environment

    print("\n".join(f"export {name}={value}" for name, value in node_environment().items()))


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from ops.stack import run

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

    kq = db.add_parser("import-korquad", help="KorQuAD 1.0 JSON: articles as documents, paragraphs as passages, "
                       "questions as qa pairs")
    kq.add_argument("path", type=Path, nargs="?", help="default: the KorQuAD 1.0 dev file under the data folder")
    kq.set_defaults(func=cmd_db_import_korquad)

    bk = db.add_parser("import-books", help="the Aladin book catalogue CSV, cleaned, upserted by ISBN")
    bk.add_argument("path", type=Path, nargs="?", help="default: books/aladin_raw_data.csv under the data folder")
    bk.set_defaults(func=cmd_db_import_books)

    kw = db.add_parser("import-keywords", help="(query, keywords) pairs: a TSV, or silver pairs from KorQuAD "
                       "questions and passage sentences labelled by the morphological analyser")
    kw.add_argument("--tsv", type=Path, help="tab-separated query and keyword columns (keywords comma-separated)")
    kw.set_defaults(func=cmd_db_import_keywords)

    add_training_commands(sub)

    boot = sub.add_parser("bootstrap", help="load the shared data and train every model with the quick preset, "
                          "skipping the data and models already there (what `tandem run` does on an empty database)")
    boot.set_defaults(func=cmd_bootstrap)

    add_models_commands(sub)

    bench = sub.add_parser("bench", help="measure a running service").add_subparsers(dest="kind", required=True)
    bl = bench.add_parser("load", help="open-loop (--rate) or closed-loop (--concurrency) load on one endpoint of "
                          "this machine: throughput, p50/p95/p99, error rate, a latency-over-time plot")
    bl.add_argument("--endpoint", required=True, help="recommendations, candidates, qa, retrieve, keywords, books "
                    "or completions")
    level = bl.add_mutually_exclusive_group(required=True)
    level.add_argument("--rate", help="Poisson arrivals per second, or steps `rate:seconds,rate:seconds,...`")
    level.add_argument("--concurrency", help="clients each waiting for its answer, or steps `clients:seconds,...`")
    bl.add_argument("--duration", type=float, default=30.0, help="seconds, when --rate/--concurrency is one number")
    bl.add_argument("--max-requests", type=int, default=10_000, help="stop sending after this many")
    bl.add_argument("--url", default="http://127.0.0.1:8000", help="the service (loopback only)")
    bl.add_argument("--metrics-url", help="Prometheus endpoint to read replica counts from while loading, e.g. "
                    "http://127.0.0.1:8080/metrics")
    bl.add_argument("--timeout", type=float, default=300.0, help="seconds before a request counts as failed")
    bl.add_argument("--plot", type=Path, help="write the latency-over-time PNG here")
    bl.add_argument("--seed", type=int, default=0)
    bl.set_defaults(func=cmd_bench_load)

    smoke = sub.add_parser("cluster-smoke", help="two Ray nodes on this machine, `serve deploy` of the config, a "
                           "replica killed under load; stops every Ray node on this machine afterwards")
    smoke.add_argument("--config", type=Path, default=Path("serve_config.yaml"))
    smoke.set_defaults(func=cmd_cluster_smoke)

    ray_env = sub.add_parser("ray-env", help="the environment a cluster node's `ray start` needs, as shell exports: "
                             "eval \"$(tandem ray-env)\" && ray start ...")
    ray_env.set_defaults(func=cmd_ray_env)

    add_keys_commands(sub)

    run = sub.add_parser("run", help="start PostgreSQL, Ray and the Serve application; Ctrl-C stops all")
    run.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except (ValueError, LookupError, FileNotFoundError) as exc:  # bad input or missing models: say what, no traceback
        raise SystemExit(f"tandem: error: {exc}") from exc


if __name__ == "__main__":
    main()
