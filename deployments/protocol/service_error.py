"""Errors on the wire: the one JSON shape of every error answer (OpenAI's, with the request's id), and the error
value deployments return instead of raising (exceptions crossing Ray processes lose their meaning, a value keeps
its HTTP status and message)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    message: str = Field(description="What is wrong, and where it helps, what to do.")
    type: str
    param: str | None = Field(default=None, description="The field, header or parameter at fault.")
    request_id: str | None = Field(default=None, description="The X-Request-ID of the request, as in the logs.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ServiceError(BaseModel):
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
