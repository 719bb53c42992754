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


def cmd_train_lrurec(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from models.lrurec.train import TrainConfig
    from tandem.jobs.lrurec import TrainRequest, run_training

    model_options = {k: getattr(args, k) for k in ("hidden", "blocks", "dropout", "max_len") if getattr(args, k)}
    if args.dropout is not None:
        model_options["attn_dropout"] = args.dropout
    train_cfg = TrainConfig(max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr,
                            weight_decay=args.weight_decay, patience=args.patience, seed=args.seed)
    request = TrainRequest(ratings=args.ratings, output=args.output, model_options=model_options, train=train_cfg,
                           activate=not args.no_activate)
    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        metrics = run_training(settings, request, url)
    # The last line is the metrics JSON, for scripts.
    print(json.dumps(metrics))


def cmd_train_ranker(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from models.verbalizer.train import RankerTrainConfig
    from tandem.jobs.ranker import RankerRequest, run_ranker_training

    request = RankerRequest(
        ratings=args.ratings, items=args.items, lrurec=args.lrurec, output=args.output, examples=args.examples,
        eval_users=args.eval_users, activate=not args.no_activate,
        train=RankerTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
    )
    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        metrics = run_ranker_training(settings, request, url)
    print(json.dumps(metrics))


def cmd_eval_lrurec(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from tandem.jobs.lrurec import run_evaluation

    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        print(json.dumps(run_evaluation(args.model, args.ratings, url)))


def cmd_models_register(settings: Settings, args: argparse.Namespace) -> None:
    from db import registry
    from tandem.jobs.lrurec import new_version

    folder = args.artifact.resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no artifact folder {folder}")
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    version = args.version or new_version()

    async def register(conn) -> dict:
        run_id = await registry.start_run(conn, args.pipeline, {"registered_from": str(folder)})
        row = await registry.finish_run(conn, run_id, args.pipeline, version, folder, metrics,
                                        activate=not args.no_activate)
        return row.model_dump(exclude={"metrics"})

    print(json.dumps(asyncio.run(_with_connection(settings, register))))


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from tandem.stack import run

    run(settings)


def parser() -> argparse.ArgumentParser:
    from models.lrurec.train import TrainConfig
    from models.verbalizer.data import DEFAULT_EXAMPLES
    from models.verbalizer.train import RankerTrainConfig

    TRAIN_DEFAULTS, RANKER_DEFAULTS = TrainConfig(), RankerTrainConfig()
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

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    lru = train.add_parser("lrurec", help="LRURec candidate generator; from the database unless --ratings")
    lru.add_argument("--ratings", type=Path, help="ratings CSV instead of the database (user_id|userId, "
                     "item_id|movieId|itemId, timestamp[, rating])")
    lru.add_argument("--items", type=Path, help="items CSV (item_id,title); titles are not needed for training")
    lru.add_argument("--output", type=Path, help="artifact folder (default var/artifacts/lrurec/<version>)")
    lru.add_argument("--max-epochs", type=int, default=TRAIN_DEFAULTS.max_epochs)
    lru.add_argument("--patience", type=int, default=TRAIN_DEFAULTS.patience)
    lru.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS.batch_size)
    lru.add_argument("--lr", type=float, default=TRAIN_DEFAULTS.lr)
    lru.add_argument("--weight-decay", type=float, default=TRAIN_DEFAULTS.weight_decay)
    lru.add_argument("--seed", type=int, default=TRAIN_DEFAULTS.seed)
    lru.add_argument("--hidden", type=int)
    lru.add_argument("--blocks", type=int)
    lru.add_argument("--dropout", type=float, help="dropout everywhere in the model")
    lru.add_argument("--max-len", type=int, dest="max_len")
    lru.add_argument("--no-activate", action="store_true", help="register the version without serving it")
    lru.set_defaults(func=cmd_train_lrurec)

    rk = train.add_parser("ranker", help="LoRA adapter of the LLM verbalizer, on top of a trained LRURec; "
                          "from the database unless --ratings")
    rk.add_argument("--ratings", type=Path, help="ratings CSV instead of the database")
    rk.add_argument("--items", type=Path, help="items CSV with titles (item_id|movieId,title), with --ratings")
    rk.add_argument("--lrurec", type=Path, help="LRURec artifact folder (default: the active version)")
    rk.add_argument("--output", type=Path, help="adapter folder (default var/artifacts/ranker/<version>)")
    rk.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="LlamaRec-style training prompts")
    rk.add_argument("--epochs", type=int, default=RANKER_DEFAULTS.epochs)
    rk.add_argument("--batch-size", type=int, default=RANKER_DEFAULTS.batch_size)
    rk.add_argument("--lr", type=float, default=RANKER_DEFAULTS.lr)
    rk.add_argument("--seed", type=int, default=RANKER_DEFAULTS.seed)
    rk.add_argument("--eval-users", type=int, help="evaluate on the first N test users (default: all)")
    rk.add_argument("--no-activate", action="store_true", help="register the adapter without serving it")
    rk.set_defaults(func=cmd_train_ranker)

    evaluate = sub.add_parser("eval", help="evaluate a saved model").add_subparsers(dest="model", required=True)
    ev = evaluate.add_parser("lrurec", help="test metrics of a saved LRURec (full ranking, history excluded)")
    ev.add_argument("--model", type=Path, required=True, help="artifact folder")
    ev.add_argument("--ratings", type=Path, help="ratings CSV instead of the database")
    ev.set_defaults(func=cmd_eval_lrurec)

    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="action", required=True)
    reg = models.add_parser("register", help="register (and activate) an artifact trained elsewhere")
    reg.add_argument("pipeline", choices=["lrurec", "ranker", "dpr", "qa", "kobart", "books"])
    reg.add_argument("artifact", type=Path, help="the artifact folder (LRURec checkpoint or peft adapter)")
    reg.add_argument("--version", help="version name (default: a timestamp)")
    reg.add_argument("--no-activate", action="store_true")
    reg.set_defaults(func=cmd_models_register)

    run = sub.add_parser("run", help="start PostgreSQL, Ray and the Serve application; Ctrl-C stops all")
    run.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except (ValueError, FileNotFoundError) as exc:  # bad input files or options: say what, no traceback
        raise SystemExit(f"tandem: error: {exc}") from exc


if __name__ == "__main__":
    main()
