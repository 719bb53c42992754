"""Tandem against the seed projects' way of serving (benchmarks/flask_baseline.py: one Flask worker, Hugging Face
models, one request at a time) for recommendation and QA, closed loop at concurrency 1, 8 and 32, in one run:
answered requests per second, p50/p99 latency, error rate, and Tandem's throughput over the baseline's.

Needs the stack up with MovieLens, KorQuAD, an active LRURec, ranker adapter and retrieval index, and LLM time
budgets long enough for the queue at concurrency 32 (past them Tandem answers in LRURec's order or 503):

    TANDEM_RANKER_TIMEOUT_S=600 TANDEM_QA_TIMEOUT_S=600 make run
    TANDEM_API_KEY=<a key, or the admin key make run prints> .venv/bin/python benchmarks/baselines.py --seconds 60

A request refused (4xx) by either server stops the run: a refusal is not an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ops.loadtest import Step, load, summary, workloads
from ops.stack import api_headers
from tandem.settings import Settings

HERE = Path(__file__).resolve().parent


def start_baseline(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(HERE / "flask_baseline.py"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(2)
    process.kill()
    raise TimeoutError("the Flask baseline did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per pipeline, concurrency and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--pipelines", nargs="+", default=["recommendations", "qa"], choices=["recommendations", "qa"])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=8001, help="for the baseline")
    args = parser.parse_args()
    known = workloads(Settings().data_dir)
    servers = {"tandem": args.tandem, "flask": f"http://127.0.0.1:{args.port}"}
    baseline = start_baseline(args.port)
    results: dict = {}
    try:
        for pipeline in args.pipelines:
            for concurrency in args.concurrency:
                steps = [Step(level=concurrency, seconds=args.seconds)]
                row = {}
                for name, url in servers.items():
                    run = asyncio.run(load(url, known[pipeline], steps, closed=True, max_requests=100_000,
                                           timeout_s=900, seed=concurrency, headers=api_headers()))
                    row[name] = {k: v for k, v in summary(run, steps).items() if k != "steps"}
                    if row[name]["rejected_4xx"]:
                        sys.exit(f"{name} refused {row[name]['rejected_4xx']} requests (is TANDEM_API_KEY set?): "
                                 f"{json.dumps(row[name])}")
                row["throughput_ratio"] = round(row["tandem"]["answered_per_s"] / row["flask"]["answered_per_s"], 2)
                results.setdefault(pipeline, {})[concurrency] = row
                print(json.dumps({"pipeline": pipeline, "concurrency": concurrency, **row}), file=sys.stderr)
    finally:
        # Ctrl-C, so that it lets go of the embedded database on its way out.
        baseline.send_signal(signal.SIGINT)
        baseline.wait(timeout=60)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
