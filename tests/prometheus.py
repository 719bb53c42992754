"""Reading Ray's Prometheus endpoint in tests, with Prometheus' own text-format parser."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]


def scrape(metrics_url: str) -> list[Sample]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(
        httpx.get(metrics_url, timeout=10).text) for s in family.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name` over every label set that has `labels` (replicas, deployments, other tags)."""
    return sum(value for n, have, value in samples if n == name and all(have.get(k) == v for k, v in labels.items()))


def wait_for(metrics_url: str, moved: Callable[[list[Sample]], bool], timeout_s: float = 60) -> list[Sample]:
    """Scrape until `moved` holds or the time is up (Ray's agents export every few seconds); the last scrape."""
    deadline = time.monotonic() + timeout_s
    while not moved(samples := scrape(metrics_url)) and time.monotonic() < deadline:
        time.sleep(2)
    return samples
