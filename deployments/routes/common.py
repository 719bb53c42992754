"""What every router uses: the ingress's handles and settings (`Services`, a FastAPI dependency), and a
deployment's answer turned into the route's."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import Depends, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from db.api_keys import Scope
from deployments.health import DeploymentDown
from deployments.http_errors import error_response
from deployments.pipelines.services import Services
from deployments.protocol.service_error import ErrorResponse, ServiceError


def get_services() -> Services:
    """The serving ingress's `Services`. Serve runs a frozen copy of the FastAPI app, so what the ingress's
    constructor would put on `app.state` is not seen by the routes; the replica's own instance is."""
    return serve.get_replica_context().servable_object.services


Served = Annotated[Services, Depends(get_services)]


def needs(*deployments: str):
    """A route dependency: 503 with the reason when a deployment the route cannot do without is down."""

    def check() -> None:
        states = get_services().deployments
        for name in deployments:
            if (reason := states.problem(name)) is not None:
                raise DeploymentDown(name, reason)

    return Depends(check)


bearer = HTTPBearer(auto_error=False, scheme_name="api_key",
                    description="An API key: `tandem keys create --scope admin|inference`, or POST /v1/keys.")


def allowed(scope: Scope):
    """A router dependency: 401 without a known key, 403 when the key's scope does not reach `scope`; nothing
    when TANDEM_AUTH=off. Listed in the OpenAPI document as the bearer scheme."""

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        services = get_services()
        if services.settings.auth == "keys":
            await services.keys.check(credentials.credentials if credentials else None, scope)

    return Depends(check)


# A route that streams with `stream: true`: its 200 is also server-sent events, one JSON object per `data:` line.
STREAMED = {200: {"content": {"text/event-stream": {}},
                  "description": "JSON, or with `stream: true` server-sent events ending in `data: [DONE]`."}}


class EventStream(StreamingResponse):
    """Server-sent events whose generator is closed when the response ends, however it ends. Starlette leaves a
    generator that a client stopped reading suspended at its `yield` until the garbage collector finds it, and
    the model work it waits on running until then; closing it runs its cleanup now (`calls.streamed`)."""

    def __init__(self, events: AsyncGenerator[str, None]):
        super().__init__(events, media_type="text/event-stream")
        self.events = events

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.events.aclose()


def errors(*codes: int) -> dict:
    """The `responses` of a route: each status it may answer with, in the documented error shape."""
    return {code: {"model": ErrorResponse} for code in codes}


def service_error_response(error: ServiceError) -> JSONResponse:
    return error_response(error.status, error.message, error.type, error.param)


def answered(result):
    """A deployment's result as the route's answer: a ServiceError becomes its JSON error response."""
    return service_error_response(result) if isinstance(result, ServiceError) else result
