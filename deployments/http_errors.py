"""How errors become HTTP responses: one place, one JSON shape (`{"error": {message, type, param}}`)."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import RayServeException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.errors import UNAVAILABLE, IdempotencyConflict, MissingReferences, NotFound
from deployments.health import DeploymentDown
from deployments.protocol.openai import ErrorBody, ErrorResponse

log = logging.getLogger("tandem.http")


def error_response(
    status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, headers=None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=type_, param=param))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # One readable sentence per problem, naming the field: "max_tokens: Input should be greater than or equal to 1".
    fields, problems = [], []
    for err in exc.errors():
        # A JSON syntax error's location is a character offset, not a field.
        loc = () if err["type"] == "json_invalid" else err["loc"]
        # The first element says where (body, query string, path, header); a field may be called "query" too.
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        field = ".".join(str(p) for p in loc) or "body"
        fields.append(field)
        problems.append(f"{field}: {err['msg']}")
    return error_response(422, "; ".join(problems), param=fields[0] if fields else None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)

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

    @app.exception_handler(DeploymentDown)
    async def deployment_down(_: Request, exc: DeploymentDown) -> JSONResponse:
        return error_response(503, str(exc), "service_unavailable", headers={"Retry-After": "5"})

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, before they are read into memory.

    The limit is the serving ingress's `max_body_bytes` (from `TANDEM_MAX_BODY_MIB`). Serve runs a frozen copy of
    the FastAPI app, so the ingress's constructor cannot hand it over on `app.state`.
    """

    def __init__(self, app: ASGIApp, default_max_bytes: int = 16 * 2**20):
        self.app, self.default_max_bytes = app, default_max_bytes

    def _limit(self) -> int:
        try:
            return serve.get_replica_context().servable_object.max_body_bytes
        except (RayServeException, AttributeError):  # not in a replica, or one that sets no limit
            return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit()
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
