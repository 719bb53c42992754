"""The asyncpg pool, numbered SQL migrations and one module of queries per table family; `connect` for the CLI and
training runs."""

from db.connection import connect

__all__ = ["connect"]
