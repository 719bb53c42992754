"""The HTTP routes, one FastAPI router per pipeline; the ingress deployment mounts them."""
