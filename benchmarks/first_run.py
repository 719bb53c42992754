"""Time a first `make run`: from the command, on a fresh clone, to the stack answering, each bootstrap step ending and
every pipeline answering from its own trained model (docs/benchmarks.md, "First run"). Stops the stack after.

    git clone . ../fresh && .venv/bin/python benchmarks/first_run.py ../fresh
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from ops.stack import readiness


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clone", type=Path, help="a fresh clone (no .venv, no var/)")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--timeout-s", type=float, default=3600)
    args = p.parse_args()
    started = time.monotonic()
    log = (args.clone.parent / f"{args.clone.name}.run.log").open("w")
    proc = subprocess.Popen(["make", "run"], cwd=args.clone, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    events: dict[str, float] = {}

    def note(what: str) -> None:
        events[what] = round(time.monotonic() - started)
        print(f"{events[what]:6.0f} s  {what}", flush=True)

    try:
        while time.monotonic() - started < args.timeout_s:
            body = readiness(args.url) or {}
            if body.get("status") == "ready" and "stack ready" not in events:
                note("stack ready")
            boot = body.get("bootstrap")
            for step in (boot or {}).get("steps", []):
                if step["status"] in ("done", "skipped", "failed") and step["name"] not in events:
                    note(step["name"])
            if boot and boot["status"] == "finished":
                note("bootstrap finished")
                print(json.dumps({"seconds": events, "models": body["models"]}))
                return
            time.sleep(5)
        raise SystemExit(f"not finished after {args.timeout_s:g} s")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=300)


if __name__ == "__main__":
    main()
