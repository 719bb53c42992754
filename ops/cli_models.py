"""`tandem models register | list | activate | rollback | gc`: the model registry and its artifact store."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from db import registry
from db.server import on_database
from tandem.artifacts import collect_garbage
from tandem.pipelines import MODELS
from tandem.settings import Settings
from training.registered import register


def _on_database(settings: Settings, work):
    return asyncio.run(on_database(settings.database_url, settings.pgdata_dir, work))


def _print(version: registry.ModelVersion) -> None:
    print(json.dumps(version.model_dump(mode="json", exclude={"metrics"})))


def cmd_models_register(settings: Settings, args: argparse.Namespace) -> None:
    from training.lrurec import new_version

    folder = args.artifact.resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no artifact folder {folder}")
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    version = args.version or new_version()

    async def work(conn) -> registry.ModelVersion:
        run_id = await registry.start_run(conn, args.pipeline, {"registered_from": str(folder)})
        return await register(conn, settings, run_id, args.pipeline, version, folder, metrics, not args.no_activate)

    _print(_on_database(settings, work))


def cmd_models_list(settings: Settings, args: argparse.Namespace) -> None:
    for version in _on_database(settings, lambda conn: registry.list_versions(conn, args.pipeline)):
        _print(version)


def cmd_models_activate(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn) -> registry.ModelVersion:
        named = [v for v in await registry.list_versions(conn, args.pipeline) if v.version == args.version]
        if not named:
            raise LookupError(f"no version {args.version!r}" + (f" of {args.pipeline}" if args.pipeline else ""))
        if len(named) > 1:
            raise LookupError(f"version {args.version!r} exists for {', '.join(v.pipeline for v in named)}: "
                              "say which with --pipeline")
        return await registry.activate(conn, named[0].pipeline, args.version)

    _print(_on_database(settings, work))


def cmd_models_rollback(settings: Settings, args: argparse.Namespace) -> None:
    _print(_on_database(settings, lambda conn: registry.rollback(conn, args.pipeline)))


def cmd_models_gc(settings: Settings, args: argparse.Namespace) -> None:
    done = _on_database(settings, lambda conn: collect_garbage(conn, settings.artifact_url, args.keep))
    print(json.dumps(done.model_dump()))


def hub_models(settings: Settings) -> list[str]:
    """The configured base models that are hub names rather than folders on this node."""
    return [name for name in (settings.llm_model, settings.bert_model, settings.bart_model)
            if name and not Path(name).exists()]


def cmd_models_prefetch(settings: Settings, args: argparse.Namespace) -> None:
    from huggingface_hub import snapshot_download

    # HF_TOKEN, read by huggingface_hub itself, opens gated models (Gemma); HF_HOME places the node's cache.
    fetched = {name: snapshot_download(name) for name in hub_models(settings)}
    print(json.dumps({"fetched": fetched}))


def add_models_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="action", required=True)
    reg = models.add_parser("register", help="register (and activate) an artifact trained elsewhere: uploaded to "
                            "the artifact store (TANDEM_ARTIFACT_URL, or the database) and registered in one step")
    reg.add_argument("pipeline", choices=list(MODELS))
    reg.add_argument("artifact", type=Path, help="the artifact folder (LRURec checkpoint or peft adapter)")
    reg.add_argument("--version", help="version name (default: a timestamp)")
    reg.add_argument("--no-activate", action="store_true")
    reg.set_defaults(func=cmd_models_register)

    listing = models.add_parser("list", help="every registered version, newest first, as JSON lines")
    listing.add_argument("--pipeline", choices=list(MODELS))
    listing.set_defaults(func=cmd_models_list)

    activate = models.add_parser("activate", help="serve this version; every replica loads it and swaps it in")
    activate.add_argument("version")
    activate.add_argument("--pipeline", choices=list(MODELS), help="when two models have a version of that name")
    activate.set_defaults(func=cmd_models_activate)

    rollback = models.add_parser("rollback", help="serve again the version served before the current one")
    rollback.add_argument("pipeline", choices=list(MODELS))
    rollback.set_defaults(func=cmd_models_rollback)

    gc = models.add_parser("gc", help="delete all but the active and the KEEP latest other versions of each "
                           "model, and every stored artifact no version names")
    gc.add_argument("--keep", type=int, default=3)
    gc.set_defaults(func=cmd_models_gc)

    prefetch = models.add_parser("prefetch", help="download the configured hub models (TANDEM_LLM_MODEL, "
                                 "TANDEM_BERT_MODEL, TANDEM_BART_MODEL) into this node's Hugging Face cache, once per "
                                 "node before its replicas start; gated ones need HF_TOKEN")
    prefetch.set_defaults(func=cmd_models_prefetch)
