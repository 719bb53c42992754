"""`tandem keys create | list | revoke`: API keys in the database (the embedded one when DATABASE_URL is unset)."""

from __future__ import annotations

import argparse
import asyncio
import json

from db.api_keys import create_key, list_keys, revoke_key
from db.server import on_database
from tandem.settings import Settings


def _on_database(settings: Settings, work):
    return asyncio.run(on_database(settings.database_url, settings.pgdata_dir, work))


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> None:
    record, key = _on_database(settings, lambda conn: create_key(conn, args.scope, args.name))
    print(json.dumps({**record.model_dump(mode="json"), "key": key}))


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> None:
    keys = _on_database(settings, lambda conn: list_keys(conn, args.all))
    print(json.dumps([k.model_dump(mode="json") for k in keys]))


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    revoked = _on_database(settings, lambda conn: revoke_key(conn, args.id))
    if revoked is None:
        raise LookupError(f"no API key {args.id}")
    print(json.dumps(revoked.model_dump(mode="json")))


def add_keys_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it (once: only its digest is stored)")
    create.add_argument("--scope", choices=["admin", "inference"], required=True)
    create.add_argument("--name", default="", help="what the key is for, shown in listings")
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="the keys not revoked (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id; replicas stop accepting it within "
                             "TANDEM_AUTH_REFRESH_S")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_keys_revoke)
