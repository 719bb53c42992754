"""Domain errors of the data layer; the routes map each to one HTTP status."""

from __future__ import annotations

import asyncio

import asyncpg


class MissingReferences(Exception):
    """Records point at ids that do not exist (HTTP 404)."""

    def __init__(self, kind: str, ids: list[str]):
        self.kind, self.ids = kind, ids
        shown = ", ".join(repr(i) for i in ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {shown}")


class NotFound(LookupError):
    """One requested record does not exist (HTTP 404)."""


class IdempotencyConflict(Exception):
    """An idempotency key was used before with a different request (HTTP 409)."""


class DatabaseUnavailable(Exception):
    """No connection to PostgreSQL could be had (HTTP 503)."""


# Errors that mean "the server is not reachable right now", as opposed to a bad query: a stopped or
# restarting server, a dropped connection, a pool that timed out waiting for one.
UNAVAILABLE = (
    DatabaseUnavailable,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.InterfaceError,
    # A connection whose server vanished mid-operation is left in a state no new query can start from.
    asyncpg.InternalClientError,
    asyncio.TimeoutError,
)
# What connecting or talking to a vanished server raises besides asyncpg's own errors.
CONNECTION_LOST = (*UNAVAILABLE, OSError)
