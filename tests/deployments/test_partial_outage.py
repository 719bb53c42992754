"""A model deployment that cannot start makes its own routes answer 503 with the reason at once, degrades the
pipelines that can do without it, and leaves the rest serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tandem.settings import Settings
from tests.conftest import AUTH, deploy_ingress


@pytest.fixture(scope="module")
def partial(serve_app: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ingress sharing the running app's deployments, except an LLM whose model folder is empty."""
    from ray import serve

    from deployments.app import build_llm

    empty: Path = tmp_path_factory.mktemp("no-model")
    broken = settings.model_copy(update={"llm_model": str(empty), "llm_num_cpus": 0})
    # Not serve.run: it waits for the application to be healthy, which this one never is.
    serve.run_many([serve.RunTarget(build_llm(broken), name="broken-llm", route_prefix=None)],
                   wait_for_applications_running=False)
    llm = serve.get_deployment_handle("LLMServer", app_name="broken-llm")
    url = deploy_ingress(serve_app, "partial", settings, llm=llm)
    deadline = time.monotonic() + 60
    while (checks := httpx.get(f"{url}/readyz", timeout=30).json()["checks"])["llm"] == "ok":
        assert time.monotonic() < deadline, checks
        time.sleep(1)
    yield url
    serve.delete("partial")
    serve.delete("broken-llm")


def test_readiness_names_the_failed_deployment_per_pipeline(partial: str) -> None:
    r = httpx.get(f"{partial}/readyz", timeout=30)
    assert r.status_code == 503
    body = r.json()
    assert "LLMServer" in body["checks"]["llm"] and body["checks"]["keywords"] == "ok", body["checks"]
    pipelines = {name: p["status"] for name, p in body["pipelines"].items()}
    assert pipelines["llm"] == pipelines["qa"] == "unavailable", pipelines
    assert pipelines["recommendation"] == pipelines["books"] == "degraded", pipelines
    assert pipelines["keywords"] == pipelines["retrieval"] == pipelines["candidates"] == "ready", pipelines
    assert "LLMServer" in body["pipelines"]["qa"]["reason"]

    assert httpx.get(f"{partial}/readyz/keywords", timeout=30).status_code == 200
    assert httpx.get(f"{partial}/readyz/recommendation", timeout=30).json()["status"] == "degraded"
    assert httpx.get(f"{partial}/readyz/qa", timeout=30).status_code == 503
    missing = httpx.get(f"{partial}/readyz/nothing", timeout=30)
    assert missing.status_code == 404 and "qa" in missing.json()["error"]["message"]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "Hello", "max_tokens": 2}),
    ("/v1/qa", {"question": "이사화물 통관은 어떻게 하나요?"}),
])
def test_routes_that_need_the_llm_answer_503_at_once(partial: str, path: str, body: dict) -> None:
    # Refused from the readiness state, not by a handle call waiting for a replica that never comes (which the
    # client's timeout would end).
    r = httpx.post(f"{partial}{path}", json=body, timeout=10, headers=AUTH)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["type"] == "service_unavailable" and "llm deployment is unavailable" in error["message"]
    assert "LLMServer" in error["message"] and r.headers["retry-after"]


def test_the_other_pipelines_keep_serving(partial: str, trained: dict) -> None:
    keywords = httpx.post(f"{partial}/v1/keywords", json={"text": "이사화물 통관 예약"}, timeout=60, headers=AUTH)
    assert keywords.status_code == 200 and len(keywords.json()["results"]) == 1
    candidates = httpx.post(f"{partial}/v1/candidates", json={"user_id": "1", "k": 5}, timeout=60, headers=AUTH)
    assert candidates.status_code == 200 and len(candidates.json()["candidates"]) == 5

    # The LLM stage is skipped ("unavailable"), not waited for (the timeout).
    rec = httpx.post(f"{partial}/v1/recommendations", json={"user_id": "1", "k": 5}, timeout=10, headers=AUTH)
    assert rec.status_code == 200, rec.text
    body = rec.json()
    assert (body["ordered_by"], body["fallback"]) == ("lrurec", True)
    assert "unavailable" in body["fallback_reason"] and "LLMServer" in body["fallback_reason"]
    assert [i["item_id"] for i in body["items"]] == [c["item_id"] for c in candidates.json()["candidates"]]
