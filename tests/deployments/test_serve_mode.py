"""Serve's high-throughput mode, as `tandem run` starts it: HAProxy holds the port, ingress replicas serve HTTP."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ops.serve_mode import NODE_ENVIRONMENT
from tests.conftest import AUTH

HAPROXY_METRICS = f"http://127.0.0.1:{os.environ.get('RAY_SERVE_HAPROXY_METRICS_PORT', '9101')}/metrics"


def responses_per_server() -> dict[str, float]:
    """2xx responses HAProxy relayed, per backend server (an ingress replica, or the fallback Serve proxy)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(HAPROXY_METRICS, timeout=10).text):
        for sample in family.samples:
            if sample.name == "haproxy_server_http_responses_total" and sample.labels.get("code") == "2xx":
                server = sample.labels["server"]
                counts[server] = counts.get(server, 0.0) + sample.value
    return counts


def test_the_port_is_haproxy_and_requests_reach_an_ingress_replica_directly(http: httpx.Client) -> None:
    before = responses_per_server()
    sent = 12
    for _ in range(sent):
        assert http.get("/v1/models").status_code == 200
    after = responses_per_server()
    grown = {server: after[server] - before.get(server, 0.0) for server in after}
    replicas = {server: n for server, n in grown.items() if server.startswith("SERVE_REPLICA_tandem-Ingress")}
    assert sum(replicas.values()) >= sent, grown
    assert sum(n for server, n in grown.items() if "PROXY" in server) == 0, grown


def test_health_is_answered_by_haproxy_while_replicas_are_up(serve_app: str) -> None:
    answer = httpx.get(f"{serve_app}/-/healthz", timeout=10)
    assert (answer.status_code, answer.text) == (200, "success")
    assert httpx.get(f"{serve_app}/-/routes", timeout=10).json()["/"] == "tandem"


def test_ray_env_prints_what_a_node_needs_and_keeps_what_is_set() -> None:
    def exports(env: dict[str, str]) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-m", "ops.cli", "ray-env"], capture_output=True, text=True,
                             check=True, env=env).stdout
        return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())

    clean = {k: v for k, v in os.environ.items() if k not in NODE_ENVIRONMENT}
    assert exports(clean) == NODE_ENVIRONMENT
    assert exports(clean | {"RAY_SERVE_ENABLE_HA_PROXY": "0"})["RAY_SERVE_ENABLE_HA_PROXY"] == "0"


def test_requests_carry_their_ids_through_haproxy(http: httpx.Client) -> None:
    answer = http.get("/v1/models", headers=AUTH | {"X-Request-ID": "through-haproxy-1"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "through-haproxy-1"
