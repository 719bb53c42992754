"""How late an ordinary process on this machine wakes up while the stack serves a closed loop, against the same
process on the idle stack: tells a refusal's own cost apart from the machine's scheduling delays.

A probe (this process) sleeps 10 ms again and again and records how late each sleep ends, first with nothing sent
(`--baseline-seconds`), then while a child process runs the closed loop of `--pipeline` with `--clients` clients
(clients wait as a refusal's Retry-After asks, as in benchmarks/overload.py). Reported: the probe's delays (p50,
p99, max) in both windows, and the loop's answers and refusals (p50, p99). Run it at a real-time priority
(`chrt -f 50 …`) to see whether the delays come from the scheduler of ordinary processes or from the machine.

    TANDEM_ADMIN_KEY=<key> .venv/bin/python benchmarks/wakeup_latency.py --pipeline recommendations --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time

import numpy as np

from ops.loadtest import Step, load, workloads
from ops.stack import api_headers
from tandem.settings import Settings

SLEEP_S = 0.01


def probe(seconds: float) -> dict:
    """Percentiles of how much later than asked each of many 10 ms sleeps ended, in ms."""
    late, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        asked = time.monotonic()
        time.sleep(SLEEP_S)
        late.append(time.monotonic() - asked - SLEEP_S)
    ms = np.array(late) * 1000
    return {"sleeps": len(ms), "p50_ms": round(float(np.median(ms)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1), "over_100ms": int((ms > 100).sum())}


def loop(url: str, pipeline: str, clients: int, seconds: float, results: multiprocessing.Queue) -> None:
    run = asyncio.run(load(url, workloads(Settings().data_dir)[pipeline], [Step(level=clients, seconds=seconds)],
                           closed=True, max_requests=10**6, timeout_s=900, seed=1, headers=api_headers(),
                           honor_retry_after=True))

    def percentiles(status: int) -> dict:
        ms = np.array([o.latency_s for o in run.outcomes if o.status == status]) * 1000
        return {"count": len(ms), "p50_ms": round(float(np.median(ms)), 1) if len(ms) else None,
                "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None}

    results.put({"answered": percentiles(200), "refused": percentiles(503),
                 "other": len([o for o in run.outcomes if o.status not in (200, 503)])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--pipeline", default="recommendations", choices=["recommendations", "qa", "completions",
                                                                            "candidates"])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    args = parser.parse_args()
    idle = probe(args.baseline_seconds)
    results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=loop, args=(args.tandem, args.pipeline, args.clients, args.seconds, results))
    child.start()
    time.sleep(1.0)  # the loop's clients connected
    loaded = probe(args.seconds - 2.0)
    outcome = results.get()
    child.join()
    print(json.dumps({"pipeline": args.pipeline, "clients": args.clients, "probe_idle": idle,
                      "probe_under_load": loaded, "loop": outcome}))


if __name__ == "__main__":
    main()
