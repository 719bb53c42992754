"""Reading Ray's Prometheus endpoint in tests, with Prometheus' own text-format parser."""

from __future__ import annotations

import time
from collections.abc import Callable

from ops.loadtest import Sample, scrape, total

__all__ = ["Sample", "scrape", "total", "wait_for"]


def wait_for(metrics_url: str, moved: Callable[[list[Sample]], bool], timeout_s: float = 60) -> list[Sample]:
    """Scrape until `moved` holds or the time is up (Ray's agents export every few seconds); the last scrape."""
    deadline = time.monotonic() + timeout_s
    while not moved(samples := scrape(metrics_url)) and time.monotonic() < deadline:
        time.sleep(2)
    return samples
