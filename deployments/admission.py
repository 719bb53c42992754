"""The ingress's own bounds: past `ingress_max_ongoing_requests` requests at once in a replica, or past a route's
own `route_max_ongoing_requests`, the next is refused at once with 503 and Retry-After instead of waiting in a
queue without end. Health and readiness are always answered, so that probes still see a busy replica as alive."""

from __future__ import annotations

from collections import Counter

from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.http_errors import error_response, from_ingress

ALWAYS_ANSWERED = ("/healthz", "/readyz")


class Admission:
    def __init__(self, app: ASGIApp, default_limit: int = 256):
        self.app, self.default_limit = app, default_limit
        self.ongoing = 0
        self.by_route: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The path under the application's route prefix, which Serve keeps in root_path.
        path = scope.get("path", "")[len(scope.get("root_path", "")):]
        if scope["type"] != "http" or path.startswith(ALWAYS_ANSWERED):
            return await self.app(scope, receive, send)
        if self.ongoing >= from_ingress("max_ongoing", self.default_limit):
            return await self.refuse(f"{self.ongoing} requests in progress here", scope, receive, send)
        # Only routes with a limit are counted: any path a client makes up would otherwise stay a key.
        limit = from_ingress("route_limits", {}).get(path)
        route = path if limit is not None else None
        if route is not None and self.by_route[route] >= limit:
            return await self.refuse(f"{self.by_route[route]} requests to {route} in progress here (its limit, "
                                     "TANDEM_ROUTE_MAX_ONGOING_REQUESTS)", scope, receive, send)
        self.ongoing += 1
        if route is not None:
            self.by_route[route] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.ongoing -= 1
            if route is not None:
                self.by_route[route] -= 1

    @staticmethod
    async def refuse(why: str, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(503, f"overloaded: {why}; try again shortly", "service_unavailable",
                                  headers={"Retry-After": "1"})
        await response(scope, receive, send)
