"""Tandem's own metrics on Ray's Prometheus endpoint move with real traffic: per pipeline, per stage, fallbacks,
tokens, batch sizes and the model versions in service."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx

from tests.prometheus import Sample, scrape, total, wait_for


def _counts(samples: list[Sample]) -> dict[str, float]:
    return {
        "keywords ok": total(samples, "ray_tandem_pipeline_requests_total", pipeline="keywords", status="2xx"),
        "keywords rejected": total(samples, "ray_tandem_pipeline_requests_total", pipeline="keywords", status="4xx"),
        "recommendation timed": total(samples, "ray_tandem_pipeline_seconds_count", pipeline="recommendation"),
        "candidates stage": total(samples, "ray_tandem_stage_seconds_count", pipeline="recommendation",
                                  stage="candidates"),
        "ranking stage": total(samples, "ray_tandem_stage_seconds_count", pipeline="recommendation", stage="ranking"),
        "cold fallbacks": total(samples, "ray_tandem_fallbacks_total", pipeline="recommendation", stage="candidates"),
        "rank prompt tokens": total(samples, "ray_tandem_llm_tokens_total", kind="rank", direction="prompt"),
        "candidate batches": total(samples, "ray_tandem_candidates_batch_size_count"),
    }


def test_pipeline_stage_fallback_token_and_batch_metrics_move(http: httpx.Client, metrics_url: str,
                                                              trained: dict) -> None:
    cold = f"metrics-{uuid.uuid4().hex[:8]}"
    http.post("/v1/users", json={"users": [{"external_id": cold}]}).raise_for_status()
    before = _counts(scrape(metrics_url))

    for text in ("이사화물 통관 예약", "관세 환급 신청 방법", "수입 신고 절차"):
        assert http.post("/v1/keywords", json={"text": text}).status_code == 200
    assert http.post("/v1/keywords", json={"text": " "}).status_code == 422
    for user in ("1", "2", cold):
        r = http.post("/v1/recommendations", json={"user_id": user, "k": 5})
        assert r.status_code == 200, r.text
    assert r.json()["candidates_fallback"] is True  # the cold user: most popular items

    expected = {"keywords ok": 3, "keywords rejected": 1, "recommendation timed": 3, "candidates stage": 3,
                "ranking stage": 3, "cold fallbacks": 1, "rank prompt tokens": 3 * 20, "candidate batches": 1}

    def moved(samples: list[Sample]) -> bool:
        now = _counts(samples)
        return all(now[k] >= before[k] + v for k, v in expected.items())

    now = _counts(wait_for(metrics_url, moved))
    for k, v in expected.items():
        assert now[k] >= before[k] + v, (k, before[k], now[k])


def test_the_model_versions_in_service_are_exported(http: httpx.Client, metrics_url: str, trained: dict) -> None:
    active = http.get("/readyz").json()["models"]["lrurec"]

    def serving(samples: list[Sample]) -> bool:
        return total(samples, "ray_tandem_model_version", pipeline="lrurec", version=active) >= 1

    samples = wait_for(metrics_url, serving)
    assert serving(samples), active
    others = {labels["version"] for name, labels, value in samples
              if name == "ray_tandem_model_version" and labels.get("pipeline") == "lrurec" and value > 0}
    assert others == {active}, "a replaced version is still reported in service"


def test_every_metric_on_the_dashboard_is_exported(http: httpx.Client, metrics_url: str, project_root: Path,
                                                   trained: dict) -> None:
    dashboard = json.loads((project_root / "deploy" / "grafana" / "tandem.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bray_[a-z0-9_]+", target["expr"])}
    cold = f"dashboard-{uuid.uuid4().hex[:8]}"
    http.post("/v1/users", json={"users": [{"external_id": cold}]}).raise_for_status()
    # Traffic that touches every panel: each pipeline kind, a fallback, a stream for the time to first token.
    assert http.post("/v1/recommendations", json={"user_id": cold, "k": 3}).status_code == 200
    assert http.post("/v1/retrieve", json={"query": "관세 환급", "mode": "sparse"}).status_code == 200
    assert http.post("/v1/keywords", json={"text": "관세 환급"}).status_code == 200
    assert http.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2, "stream": True}).status_code == 200

    # The keyword model batches only once one is trained; until then the analyser answers.
    expected = {name for name in used if not name.startswith("ray_tandem_keywords_batch_size")}
    samples = wait_for(metrics_url, lambda s: expected <= {name for name, _, _ in s})
    missing = expected - {name for name, _, _ in samples}
    assert not missing, f"the dashboard queries metrics nothing exports: {sorted(missing)}"
