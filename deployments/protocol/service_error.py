"""The error value deployments return instead of raising: exceptions crossing Ray processes lose their
meaning, a value keeps its HTTP status and message."""

from __future__ import annotations

from pydantic import BaseModel


class ServiceError(BaseModel):
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
