"""Every pipeline once against a running stack, each with a body drawn from the shared data (the load harness's
workloads), optionally after waiting for the first-run bootstrap: one JSON line of statuses, times and whether an
answer fell back; exits 1 when any pipeline did not answer 200 from its own stages.

    TANDEM_ADMIN_KEY=<key> .venv/bin/python benchmarks/exercise.py --wait-bootstrap
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import httpx

from ops.loadtest import workloads
from ops.stack import api_headers, readiness
from tandem.settings import Settings


def wait_for_bootstrap(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = readiness(url) or {}
        boot = body.get("bootstrap")
        if body.get("status") == "ready" and (boot is None or boot["status"] == "finished"):
            return
        time.sleep(5)
    raise SystemExit(f"exercise: the stack at {url} was not ready with its bootstrap finished in {timeout_s:g} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--wait-bootstrap", action="store_true")
    p.add_argument("--timeout-s", type=float, default=600)
    args = p.parse_args()
    if args.wait_bootstrap:
        wait_for_bootstrap(args.url, args.timeout_s)
    rng, report = random.Random(0), {}
    with httpx.Client(base_url=args.url, headers=api_headers(), timeout=300) as client:
        for name, workload in workloads(Settings().data_dir).items():
            started = time.monotonic()
            answer = client.post(workload.path, json=workload.body(rng))
            body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
            report[name] = {"status": answer.status_code, "seconds": round(time.monotonic() - started, 2),
                            "fallback": isinstance(body, dict) and body.get("fallback") is True}
    print(json.dumps(report))
    if any(r["status"] != 200 or r["fallback"] for r in report.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
