"""What every router uses: the ingress's handles and settings (`Services`, a FastAPI dependency), and a
deployment's answer turned into the route's."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.responses import JSONResponse
from ray import serve

from deployments.health import DeploymentDown
from deployments.http_errors import error_response
from deployments.pipelines.services import Services
from deployments.protocol.openai import ErrorResponse
from deployments.protocol.service_error import ServiceError


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


def errors(*codes: int) -> dict:
    """The `responses` of a route: each status it may answer with, in the documented error shape."""
    return {code: {"model": ErrorResponse} for code in codes}


def service_error_response(error: ServiceError) -> JSONResponse:
    return error_response(error.status, error.message, error.type, error.param)


def answered(result):
    """A deployment's result as the route's answer: a ServiceError becomes its JSON error response."""
    return service_error_response(result) if isinstance(result, ServiceError) else result
