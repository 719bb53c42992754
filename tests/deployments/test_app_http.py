"""The Serve application over real HTTP: health, readiness, errors, metrics (the OpenAI routes as the official client
sees them: test_openai_sdk.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.prometheus import scrape, total, wait_for


def test_healthz(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_reports_each_check(http: httpx.Client) -> None:
    r = http.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "llm": "ok", "candidates": "ok", "retriever": "ok",
                              "keywords": "ok", "trainer": "ok"}
    assert {p["status"] for p in body["pipelines"].values()} == {"ready"} and "qa" in body["pipelines"]
    assert "lrurec" in body["models"] and "index" in body["models"]


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("GET", "/v1/train?limit=0", None, 422, "limit"),
    ("POST", "/v1/train", {"pipeline": "lrurec", "preset": "fast"}, 422, "preset"),
    ("POST", "/v1/train", {"pipeline": "dpr", "dpr": {"epochs": 0}}, 422, "epochs"),
    ("POST", "/v1/train", {"pipeline": "lrurec", "lrurec": {"max_epoch": 1}}, 422, "max_epoch"),
    ("GET", "/web/secrets.txt", None, 404, "secrets.txt"),
    ("POST", "/v1/qa", {"question": "   "}, 422, "question"),
    ("POST", "/v1/qa", {"question": "임진왜란", "top_k": 11}, 422, "top_k"),
    ("POST", "/v1/qa", {"question": "임진왜란", "mode": "semantic"}, 422, "mode"),
    ("POST", "/v1/qa", {"question": "임진왜란", "max_tokens": 0}, 422, "max_tokens"),
    ("POST", "/v1/books/search", {"query": "", "top_k": 5}, 422, "query"),
    ("POST", "/v1/books/search", {"query": "위로", "top_k": 0}, 422, "top_k"),
])
def test_bad_input_gets_a_4xx_naming_it_and_queues_nothing(http: httpx.Client, method: str, path: str,
                                                                 body: dict | None, status: int, says: str) -> None:
    runs_before = http.get("/v1/train?limit=200").json()
    r = http.request(method, path, json=body)
    assert r.status_code == status and says in r.text, r.text
    assert http.get("/v1/train?limit=200").json() == runs_before  # nothing queued


@pytest.mark.parametrize(("method", "path", "content", "content_type", "status", "says"), [
    ("POST", "/v1/completions", b"{not json", "application/json", 400, "the body is not valid JSON"),
    ("POST", "/v1/keywords", b'{"text": "\xff\xfe"}', "application/json", 400, "could not be read as JSON"),
    ("POST", "/v1/keywords", b"text=hello", "application/x-www-form-urlencoded", 415, "must be JSON"),
    ("POST", "/v1/users", b"{}", "text/plain", 415, "not text/plain"),
    ("GET", "/v1/nothing-here", None, None, 404, "no route /v1/nothing-here"),
    ("DELETE", "/v1/train", None, None, 405, "DELETE is not allowed on /v1/train"),
])
def test_errors_outside_the_routes_have_the_documented_shape(http: httpx.Client, method: str, path: str,
                                                             content: bytes | None, content_type: str | None,
                                                             status: int, says: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = http.request(method, path, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and says in r.json()["error"]["message"], r.text
    documented = http.get("/openapi.json").json()["paths"].get(path, {}).get(method.lower())
    if documented is not None:
        assert str(status) in documented["responses"], (path, status)


def test_prometheus_endpoint_exports_serve_llm_and_vllm_metrics(http: httpx.Client, metrics_url: str) -> None:
    before = total(scrape(metrics_url), "ray_tandem_llm_requests_total")
    for _ in range(3):
        assert http.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 2}).status_code == 200
    exported = ("ray_vllm_generation_tokens_total", "ray_serve_num_http_requests_total")
    samples = wait_for(metrics_url, lambda s: total(s, "ray_tandem_llm_requests_total") >= before + 3
                       and all(total(s, m) > 0 for m in exported))
    assert total(samples, "ray_tandem_llm_requests_total") >= before + 3
    for name in exported:
        assert total(samples, name) > 0, name