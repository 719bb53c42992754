"""Calls from the ingress to the model deployments."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

log = logging.getLogger("tandem.calls")


class Overloaded(Exception):
    """A model deployment's queue is full (HTTP 503 with Retry-After)."""


async def call(method, *args: Any) -> Any:
    """`method.remote(*args)`, awaited, and sent once more if the replica died under it. Model calls only read,
    so the second try is safe, and Serve routes it to a live replica: a replica killed or crashed costs its
    requests in flight some latency, not an error. Cancelled (a deadline, a client gone), it cancels the call in
    the replica too."""
    try:
        return await cancelled_with_caller(method.remote(*args))
    except BackPressureError as exc:  # Serve's own, raised past the app's handlers otherwise: ours, named
        raise Overloaded(f"overloaded, try again shortly: {exc}") from None
    except RayActorError as exc:
        log.warning("replica died during a call; sending it again", extra={"error": str(exc)[:200]})
        return await cancelled_with_caller(method.remote(*args))


async def cancelled_with_caller(response: Any) -> Any:
    # A task awaiting a handle call that is cancelled leaves the call running in its replica (an LLM would go on
    # generating for no one): only the response's own cancel() reaches the replica.
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()
        raise


async def streamed(chunks: Any) -> AsyncIterator[Any]:
    """The chunks of a streaming handle call (`handle.options(stream=True).method.remote(...)`); closed or cancelled
    before its end, it cancels the call in the replica."""
    finished = False
    try:
        async for chunk in chunks:
            yield chunk
        finished = True
    finally:
        if not finished:
            chunks.cancel()
