"""The ingress's own bound: past `ingress_max_ongoing_requests` requests at once in a replica, the next is refused at
once with 503 and Retry-After instead of waiting in a queue without end. Health and readiness are always answered,
so that probes still see a busy replica as alive."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.http_errors import error_response, from_ingress

ALWAYS_ANSWERED = ("/healthz", "/readyz")


class Admission:
    def __init__(self, app: ASGIApp, default_limit: int = 256):
        self.app, self.default_limit = app, default_limit
        self.ongoing = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The path under the application's route prefix, which Serve keeps in root_path.
        path = scope.get("path", "")[len(scope.get("root_path", "")):]
        if scope["type"] != "http" or path.startswith(ALWAYS_ANSWERED):
            return await self.app(scope, receive, send)
        if self.ongoing >= from_ingress("max_ongoing", self.default_limit):
            response = error_response(503, f"overloaded: {self.ongoing} requests in progress here; try again "
                                      "shortly", "service_unavailable", headers={"Retry-After": "1"})
            return await response(scope, receive, send)
        self.ongoing += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.ongoing -= 1
