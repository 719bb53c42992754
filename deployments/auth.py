"""Who may call what: API keys with scopes, checked in the ingress before a route runs.

`admin` keys may do everything `inference` keys may. A replica keeps a copy of the database's key digests, reloaded
every `auth_refresh_s`, and looks a key it does not know up in the database (one indexed row): a new key works at
once, and a revoked one stops working within `auth_refresh_s` (at once on the replica that revoked it).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from db.api_keys import Scope, active_digests, digest, key_of
from db.errors import CONNECTION_LOST, DatabaseUnavailable
from db.pool import Database
from tandem.settings import Settings

log = logging.getLogger("tandem.auth")

RANK: dict[Scope, int] = {"inference": 0, "admin": 1}


class AuthError(Exception):
    """401 (no key, or one that is unknown or revoked) or 403 (a key whose scope does not reach the route)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.type = "authentication_error" if status == 401 else "permission_error"


class KeyRing:
    def __init__(self, settings: Settings, db: Database):
        self.db, self.refresh_s = db, settings.auth_refresh_s
        self.admin_digest = digest(settings.admin_key.get_secret_value()) if settings.admin_key else None
        self._keys: dict[bytes, tuple[int, Scope]] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def scope_of(self, key: str) -> Scope | None:
        """The key's scope; None for a key that is unknown or revoked."""
        wanted = digest(key)
        if self.admin_digest is not None and hmac.compare_digest(wanted, self.admin_digest):
            return "admin"
        # Looked up by digest: what timing could tell of a lookup is a digest, which says nothing of a key.
        await self._reload()
        found = self._keys.get(wanted)
        if found is None:
            async with self.db.acquire() as conn:
                found = await key_of(conn, wanted)
            if found is not None:
                self._keys[wanted] = found
        return found[1] if found else None

    def forget(self) -> None:
        """Reload on the next request (after a key was revoked here)."""
        self._loaded_at = float("-inf")

    async def check(self, key: str | None, needed: Scope) -> None:
        if not key:
            raise AuthError(401, "an API key is required: send `Authorization: Bearer <key>` (an admin creates "
                            "keys with `tandem keys create` or POST /v1/keys)")
        granted = await self.scope_of(key)
        if granted is None:
            raise AuthError(401, "unknown or revoked API key")
        if RANK[granted] < RANK[needed]:
            raise AuthError(403, f"this key's scope is {granted}; this route needs an {needed} key")

    async def _reload(self) -> None:
        if time.monotonic() - self._loaded_at < self.refresh_s:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at < self.refresh_s:
                return
            try:
                async with self.db.acquire() as conn:
                    self._keys = await active_digests(conn)
            except CONNECTION_LOST as exc:
                if self._loaded_at == float("-inf"):  # nothing to go on: 503, as any route the database serves
                    raise DatabaseUnavailable(f"API keys cannot be checked: {exc}") from exc
                log.warning("keys not reloaded, the database is unavailable", extra={"error": str(exc)})
            self._loaded_at = time.monotonic()
