"""Bounded work: past a deployment's queue or the ingress's own limit a request is refused at once with 503 and
Retry-After in the documented shape (health still answered); an OpenAI request past its deadline gets 504."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from ray import serve

from deployments.servers.keywords import KeywordServer
from tandem.settings import Settings
from tests.conftest import AUTH, deploy_ingress
from tests.prometheus import scrape, total

COUNTING = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "temperature": 0}  # goes on counting for as long as allowed


async def burst(url: str, path: str, body: dict, clients: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=AUTH,
                                 limits=httpx.Limits(max_connections=clients)) as client:
        return await asyncio.gather(*(client.post(path, json=body) for _ in range(clients)))


def assert_refusals_documented(responses: list[httpx.Response], says: str) -> Counter:
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and statuses[200] and statuses[503], statuses
    for r in responses:
        if r.status_code == 503:
            assert r.headers.get("retry-after") and says in r.json()["error"]["message"], (r.headers, r.text)
            assert r.json()["error"]["type"] == "service_unavailable"
    return statuses


@pytest.fixture
def tight(serve_app: str, settings: Settings) -> Iterator[str]:
    """An ingress that takes 4 requests at once, before a keyword deployment that takes 1 and queues 1."""
    keywords = KeywordServer.options(name="tight-keywords", max_ongoing_requests=1, max_queued_requests=1,
                                     ray_actor_options={"num_cpus": 0})
    url = deploy_ingress(serve_app, "tight", settings.model_copy(update={"ingress_max_ongoing_requests": 4}),
                         keywords=keywords.bind(settings))
    yield url
    serve.delete("tight")


def test_a_full_queue_refuses_at_once(tight: str) -> None:
    texts = {"texts": [f"이사화물 통관예약을 하면 뭐가 좋나요 {i}" for i in range(64)]}
    responses = asyncio.run(burst(tight, "/v1/keywords", texts, 24))
    assert_refusals_documented(responses, "overloaded")
    # Both bounds refused: the keyword deployment's queue and the ingress's own limit.
    messages = {r.json()["error"]["message"].split(":")[0] for r in responses if r.status_code == 503}
    assert {"overloaded, try again shortly", "overloaded"} <= messages, messages


def test_health_is_answered_past_the_ingress_limit(tight: str) -> None:
    async def both() -> tuple[list[httpx.Response], httpx.Response]:
        load = asyncio.create_task(burst(tight, "/v1/completions", {**COUNTING, "max_tokens": 32}, 8))
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=tight, timeout=30) as client:
            ready = await client.get("/healthz")
        return await load, ready

    completions, health = asyncio.run(both())
    assert health.status_code == 200
    assert_refusals_documented(completions, "requests in progress here")


@pytest.fixture
def per_route(serve_app: str, settings: Settings) -> Iterator[str]:
    limits = {"/v1/completions": 2}
    yield deploy_ingress(serve_app, "per-route", settings.model_copy(update={"route_max_ongoing_requests": limits}))
    serve.delete("per-route")


def test_a_route_past_its_own_limit_refuses_and_the_others_serve(per_route: str) -> None:
    async def both() -> tuple[list[httpx.Response], httpx.Response]:
        load = asyncio.create_task(burst(per_route, "/v1/completions", {**COUNTING, "max_tokens": 32}, 8))
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=per_route, timeout=60, headers=AUTH) as client:
            other = await client.post("/v1/keywords", json={"text": "이사화물 통관 예약"})
        return await load, other

    completions, other = asyncio.run(both())
    assert other.status_code == 200, other.text
    statuses = assert_refusals_documented(completions, "requests to /v1/completions in progress here")
    assert statuses[200] >= 2 and statuses[503] >= 4, statuses


@pytest.fixture
def impatient(serve_app: str, settings: Settings) -> Iterator[str]:
    yield deploy_ingress(serve_app, "deadline", settings.model_copy(update={"llm_request_timeout_s": 1.0}))
    serve.delete("deadline")


def test_past_the_deadline_the_client_gets_504(impatient: str) -> None:
    r = httpx.post(f"{impatient}/v1/completions", json={**COUNTING, "max_tokens": 4000}, headers=AUTH, timeout=60)
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout", r.text
    assert "TANDEM_LLM_REQUEST_TIMEOUT_S" in r.json()["error"]["message"]
    with httpx.stream("POST", f"{impatient}/v1/completions", json={**COUNTING, "max_tokens": 4000, "stream": True},
                      headers=AUTH, timeout=60) as streamed:
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and '"type":"timeout"' in events[-2], events[-3:]


def generated_tokens_once_still(metrics_url: str, still_s: float = 10, timeout_s: float = 240) -> float:
    """vLLM's count of generated tokens (every engine) once it has not moved for `still_s`: five of Ray's metric
    exports in this session (tests/conftest.py), so a generation still running would have moved it."""
    deadline = time.monotonic() + timeout_s
    seen, since = None, time.monotonic()
    while time.monotonic() < deadline:
        if (count := total(scrape(metrics_url), "ray_vllm_generation_tokens_total")) != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= still_s:
            return count
        time.sleep(1)
    raise AssertionError(f"the engines were still generating after {timeout_s:g} s: {seen} tokens")


def test_work_nobody_waits_for_stops_in_the_engine(impatient: str, serve_app: str, metrics_url: str) -> None:
    """4,000 tokens asked for twice: once past the deadline, once by a client that leaves after a few events.
    Neither goes on generating: the engine's token count stands still soon after, far below what was asked."""
    before = generated_tokens_once_still(metrics_url)
    late = httpx.post(f"{impatient}/v1/completions", json={**COUNTING, "max_tokens": 4000}, headers=AUTH, timeout=60)
    assert late.status_code == 504, late.text
    with httpx.stream("POST", f"{serve_app}/v1/completions", headers=AUTH, timeout=60,
                      json={**COUNTING, "max_tokens": 4000, "stream": True}) as streamed:
        events = (line for line in streamed.iter_lines() if line.startswith("data: "))
        assert '"text"' in next(events) and '"text"' in next(events)  # generating; then the client leaves
    generated = generated_tokens_once_still(metrics_url) - before
    assert 0 < generated < 1000, generated
