"""A failing database degrades readiness and its own routes, not the LLM endpoint."""

from collections.abc import Iterator

import httpx
import pytest

from tandem.settings import Settings
from tests.conftest import AUTH, deploy_ingress


@pytest.fixture(scope="module")
def degraded(serve_app: str, settings: Settings) -> Iterator[str]:
    from ray import serve

    # A second ingress whose database does not exist, sharing the running LLM deployment.
    broken = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/none"})
    yield deploy_ingress(serve_app, "degraded", broken)
    serve.delete("degraded")


def test_readyz_is_503_naming_the_database(degraded: str) -> None:
    r = httpx.get(f"{degraded}/readyz", timeout=30)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["llm"] == "ok"
    assert body["checks"]["database"].startswith("unreachable")


def test_liveness_and_completions_still_work(degraded: str) -> None:
    assert httpx.get(f"{degraded}/healthz", timeout=30).status_code == 200
    r = httpx.post(f"{degraded}/v1/completions", json={"prompt": "Hello", "max_tokens": 2}, timeout=120, headers=AUTH)
    assert r.status_code == 200 and r.json()["choices"][0]["text"]
