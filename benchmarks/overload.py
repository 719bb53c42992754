"""Overload: recommendation and QA at 4× the concurrency they sustain, against the same at capacity, in one run.

Per pipeline: a closed-loop ramp finds the capacity (the fewest clients that reach 90% of the best throughput of
fully served answers); then `--seconds` at capacity and `--seconds` at 4× capacity. Clients wait as a refusal's
Retry-After asks, as well-behaved ones do. Reported: p99 of the answers accepted (200) at capacity and under
overload and their ratio (goal ≤ 2), p99 of the refusals (503 with Retry-After, goal < 100 ms), answers degraded
by a refused LLM stage (the recommender's LRURec order, flagged `fallback`), and every other outcome (goal: none).

Needs the stack up with every pipeline trained and the bounds of bounded work sized to this machine, e.g.

    TANDEM_ROUTE_MAX_ONGOING_REQUESTS='{"/v1/recommendations": 8, "/v1/qa": 8}' make run
    TANDEM_ADMIN_KEY=<the key it printed> chrt -f 50 .venv/bin/python benchmarks/overload.py

On one machine the load generator shares the cores with the stack: run it at a real-time priority (`chrt -f 50`),
as above, so that its own wake-up delays under load (see benchmarks/wakeup_latency.py) stay out of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import numpy as np

from ops.loadtest import Outcome, Run, Step, load, workloads
from ops.stack import api_headers
from tandem.settings import Settings


def p99_ms(outcomes: list[Outcome]) -> float | None:
    return round(float(np.percentile([o.latency_s for o in outcomes], 99)) * 1000, 1) if outcomes else None


def closed(url: str, pipeline: str, clients: int, seconds: float, seed: int) -> Run:
    steps = [Step(level=clients, seconds=seconds)]
    return asyncio.run(load(url, workloads(Settings().data_dir)[pipeline], steps, closed=True, max_requests=10**6,
                            timeout_s=900, seed=seed, headers=api_headers(), honor_retry_after=True))


def served(run: Run) -> list[Outcome]:
    return [o for o in run.outcomes if o.status == 200 and not o.degraded]


def capacity(url: str, pipeline: str, levels: list[int], seconds: float) -> tuple[int, dict[int, float]]:
    """The fewest clients whose fully served answers per second reach 90% of the best level's."""
    rates = {}
    for level in levels:
        rates[level] = round(len(served(closed(url, pipeline, level, seconds, seed=level))) / seconds, 3)
        print(json.dumps({"pipeline": pipeline, "ramp": level, "served_per_s": rates[level]}), file=sys.stderr)
    best = max(rates.values())
    return next(level for level in levels if rates[level] >= 0.9 * best), rates


def outcome_report(run: Run, seconds: float) -> dict:
    accepted = [o for o in run.outcomes if o.status == 200]
    refused = [o for o in run.outcomes if o.status == 503]
    return {"requests": len(run.outcomes), "served_per_s": round(len(served(run)) / seconds, 3),
            "accepted": len(accepted), "accepted_p50_ms": round(float(np.median([o.latency_s for o in accepted]))
                                                                * 1000, 1) if accepted else None,
            "accepted_p99_ms": p99_ms(accepted), "degraded": sum(o.degraded for o in accepted),
            "refused_503": len(refused), "refused_p99_ms": p99_ms(refused),
            "other": sorted({o.status for o in run.outcomes} - {200, 503})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--pipelines", nargs="+", default=["recommendations", "qa"], choices=["recommendations", "qa"])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="ramp, in clients")
    parser.add_argument("--ramp-seconds", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=90.0, help="at capacity, then at 4× capacity")
    args = parser.parse_args()
    results = {}
    for pipeline in args.pipelines:
        clients, ramp = capacity(args.tandem, pipeline, args.levels, args.ramp_seconds)
        at = outcome_report(closed(args.tandem, pipeline, clients, args.seconds, seed=1), args.seconds)
        over = outcome_report(closed(args.tandem, pipeline, 4 * clients, args.seconds, seed=2), args.seconds)
        ratio = round(over["accepted_p99_ms"] / at["accepted_p99_ms"], 2) if over["accepted_p99_ms"] else None
        results[pipeline] = {"ramp_served_per_s": ramp, "capacity_clients": clients, "at_capacity": at,
                             "at_4x": over, "accepted_p99_ratio": ratio}
        print(json.dumps({pipeline: results[pipeline]}), file=sys.stderr)
    # The clients' own scheduling delays count in every latency here: say how they ran (docs/benchmarks.md).
    results["client_scheduling"] = {os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}.get(os.sched_getscheduler(0), "other")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
