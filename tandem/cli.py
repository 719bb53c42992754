"""The `tandem` command."""

from __future__ import annotations

import argparse
import json

from tandem.logs import configure_logging
from tandem.settings import Settings


def cmd_assets_build(settings: Settings, args: argparse.Namespace) -> None:
    from tandem.assets import build_assets

    built = build_assets(settings, force=args.force)
    print(json.dumps({name: str(path) for name, path in built.items()}))


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
