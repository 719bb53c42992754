"""Calls from the ingress to the model deployments."""

from __future__ import annotations

import logging
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

log = logging.getLogger("tandem.calls")


class Overloaded(Exception):
    """A model deployment's queue is full (HTTP 503 with Retry-After)."""


async def call(method, *args: Any) -> Any:
    """`method.remote(*args)`, awaited, and sent once more if the replica died under it. Model calls only read,
    so the second try is safe, and Serve routes it to a live replica: a replica killed or crashed costs its
    requests in flight some latency, not an error."""
    try:
        return await method.remote(*args)
    except BackPressureError as exc:  # Serve's own, raised past the app's handlers otherwise: ours, named
        raise Overloaded(f"overloaded, try again shortly: {exc}") from None
    except RayActorError as exc:
        log.warning("replica died during a call; sending it again", extra={"error": str(exc)[:200]})
        return await method.remote(*args)
