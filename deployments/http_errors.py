"""How errors become HTTP responses: one place, one JSON shape (`{"error": {message, type, param, request_id}}`)."""

from __future__ import annotations

import logging
from contextvars import ContextVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from ray import serve
from ray.serve.exceptions import RayServeException
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.errors import UNAVAILABLE, IdempotencyConflict, MissingReferences, NotFound
from deployments.auth import AuthError
from deployments.health import DeploymentDown
from deployments.pipelines.calls import Overloaded
from deployments.protocol.service_error import ErrorBody, ErrorResponse

log = logging.getLogger("tandem.http")


# The request's X-Request-ID: the client's, or the one Serve's proxy gave it (it adds the header when missing).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIds:
    """Holds each request's id in REQUEST_ID while it is answered, for its error bodies."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = dict(scope.get("headers") or []).get(b"x-request-id")
        token = REQUEST_ID.set(given.decode(errors="replace") if given else None)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None) -> ErrorResponse:
    return ErrorResponse(error=ErrorBody(message=message, type=type_, param=param, request_id=REQUEST_ID.get()))


def error_response(
    status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, headers=None
) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param).model_dump(), status_code=status, headers=headers)


# The tag of the OpenAI routes, which answer an invalid request 400 as OpenAI and vLLM do (the others 422, as
# FastAPI does).
OPENAI_TAG = "openai"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # A body that is not JSON at all is the client's transport mistake (400, as OpenAI answers), not a field's.
    unparsable = [e for e in exc.errors() if e["type"] == "json_invalid"]
    if unparsable:
        return error_response(400, f"the body is not valid JSON: {unparsable[0]['ctx']['error']} at character "
                              f"{unparsable[0]['loc'][-1]}", param="body")
    # One readable sentence per problem, naming the field: "max_tokens: Input should be greater than or equal to 1".
    fields, problems = [], []
    for err in exc.errors():
        loc = err["loc"]
        # The first element says where (body, query string, path, header); a field may be called "query" too.
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        field = ".".join(str(p) for p in loc) or "body"
        fields.append(field)
        problems.append(f"{field}: {err['msg']}")
    status = 400 if OPENAI_TAG in getattr(request.scope.get("route"), "tags", ()) else 422
    return error_response(status, "; ".join(problems), param=fields[0] if fields else None)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (no such route, method not allowed, a body that cannot be read) in
    the same shape as every other error."""
    messages = {
        400: "the body could not be read as JSON (send UTF-8 JSON with Content-Type: application/json)",
        404: f"no route {request.url.path}; the API is described at /docs",
        405: f"{request.method} is not allowed on {request.url.path}; the API is described at /docs",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, "not_found_error" if exc.status_code == 404 else
                          "invalid_request_error", headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)

    @app.exception_handler(AuthError)
    async def refused(_: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, str(exc), exc.type, param="Authorization", headers=headers)

    @app.exception_handler(MissingReferences)
    async def missing(_: Request, exc: MissingReferences) -> JSONResponse:
        return error_response(404, str(exc), "not_found_error", param=f"{exc.kind}_id")

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, str(exc), "not_found_error")

    @app.exception_handler(IdempotencyConflict)
    async def conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error_response(409, str(exc), "conflict_error", param="Idempotency-Key")

    @app.exception_handler(asyncpg.IntegrityConstraintViolationError)
    @app.exception_handler(asyncpg.DataError)
    async def bad_data(_: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        # The database's own checks caught what validation let through; the transaction wrote nothing.
        return error_response(422, f"rejected by the database: {exc}")

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", extra={"error": str(exc)})
        return error_response(
            503,
            f"database unavailable, nothing was written; retry later ({exc})",
            "service_unavailable",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        # A model deployment's queue is full: refused at once rather than waiting without end.
        return error_response(503, str(exc), "service_unavailable", headers={"Retry-After": "1"})

    @app.exception_handler(DeploymentDown)
    async def deployment_down(_: Request, exc: DeploymentDown) -> JSONResponse:
        return error_response(503, str(exc), "service_unavailable", headers={"Retry-After": "5"})

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)


def from_ingress(attribute: str, default):
    """A value the serving ingress holds (set from its Settings). Serve runs a frozen copy of the FastAPI app, so the
    ingress's constructor cannot hand values to middleware on `app.state`; outside a replica, `default`."""
    try:
        return getattr(serve.get_replica_context().servable_object, attribute)
    except (RayServeException, AttributeError):
        return default


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, before they are read into memory. The limit is the serving
    ingress's `max_body_bytes` (from `TANDEM_MAX_BODY_MIB`)."""

    def __init__(self, app: ASGIApp, default_max_bytes: int = 16 * 2**20):
        self.app, self.default_max_bytes = app, default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = from_ingress("max_body_bytes", self.default_max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > limit:
            return await self._refuse(limit, scope, receive, send)
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            await self._refuse(limit, scope, receive, send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"request body over the limit of {limit} bytes; send smaller batches", "request_too_large"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class JsonBodies:
    """415 for a request whose body is declared as anything but JSON: every route here reads JSON, and a form or
    text body would otherwise reach validation as a string and be refused for a reason that hides the mistake."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            declared = dict(scope["headers"]).get(b"content-type")
            kind = declared.split(b";")[0].strip().lower() if declared is not None else b"application/json"
            if kind != b"application/json" and not kind.endswith(b"+json"):
                response = error_response(415, f"the body must be JSON (Content-Type: application/json), not "
                                          f"{kind.decode(errors='replace')}", param="Content-Type")
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def document_errors(app: FastAPI) -> None:
    """List in the OpenAPI document every status the API's routes can answer with besides their own: 503 on every
    route (the database, a model deployment, or a full queue), 422 for parameters that fail validation, and for a
    JSON body 400 (unparsable), 413 (too large), 415 (not JSON), 422 (invalid)."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/v1/"):
            continue
        codes = [503]
        if route.body_field is not None:
            codes += [400, 413, 415, 422]
        elif route.dependant.query_params or route.dependant.path_params:
            codes.append(422)
        for code in codes:
            route.responses.setdefault(code, {"model": ErrorResponse})
