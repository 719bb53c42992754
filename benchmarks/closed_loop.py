"""A closed-loop load: `requests` calls with `concurrency` in flight, each for a random user; throughput and
p50/p99 latency. Shared by the benchmarks that run as scripts from this folder.

Importing it puts this process in the Serve mode the stack runs in (`ops/serve_mode.py`: handles over gRPC, user
code on the replica's own loop), so the deployments it starts and the handles it calls are the stack's; it must
come before anything imports `ray.serve`. `RAY_SERVE_THROUGHPUT_OPTIMIZED=0 RAY_SERVE_ENABLE_HA_PROXY=0` in the
environment measures Serve's default mode instead.

`benchmark` runs each round in child processes, one per Serve mode among the variants, so that a path as it ran
in Serve's default mode is measured in the same run as today's, alternating."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from ops import serve_mode

serve_mode.enter()
# This process calls its handles from more than one event loop (an `asyncio.run` per measurement, blocking waits),
# so their router gets a loop of its own, as outside the throughput mode. It concerns only handles made here: the
# deployments measured call none.
os.environ["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] = "1"


async def measure(
    call: Callable[[str], Awaitable[None]], users: list[str], concurrency: int, requests: int, unit: str
) -> dict:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(user: str) -> None:
        async with limit:
            started = time.perf_counter()
            await call(user)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(random.choice(users)) for _ in range(requests)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        f"{unit}_per_s": round(requests / wall, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


CONCURRENCY = (1, 8, 32)
# Serve's mode per name: the stack's (this module's import puts a process in it) and Serve's default.
SERVE_MODES: dict[str, dict[str, str]] = {
    "throughput": {},
    "default": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "RAY_SERVE_ENABLE_HA_PROXY": "0"},
}
WARM_UP_KEYS = 640
# How a child's round starts on its stdout, where Ray also writes as it shuts down.
ROUND_LINE = "round: "

Call = Callable[[str], Awaitable[None]]


async def one_round(calls: dict[str, Call], keys: list[str], requests: int, unit: str) -> dict[str, dict]:
    """Every variant in `calls` in turn at each concurrency; `requests` calls per measurement (a quarter of them
    at one client)."""
    found: dict[str, dict] = {}
    for concurrency in CONCURRENCY:
        for name, call in calls.items():
            n = requests if concurrency > 1 else requests // 4
            found[f"{name}@{concurrency}"] = await measure(call, keys, concurrency, n, unit)
    return found


def summarize(rounds: list[dict[str, dict]], unit: str, baseline: str) -> dict:
    """Medians over rounds per variant and concurrency, with each round's throughput; and each variant's
    throughput over `baseline`'s in the same round, as the median and the range of those ratios (on a shared
    machine a round's rates move together, so paired ratios are steadier than a ratio of medians)."""
    rate = f"{unit}_per_s"
    table: dict = {}
    for key, first in rounds[0].items():
        table[key] = {m: statistics.median(r[key][m] for r in rounds) for m in first}
        table[key]["rounds"] = [r[key][rate] for r in rounds]
    for name in [n for n in dict.fromkeys(k.split("@")[0] for k in rounds[0]) if n != baseline]:
        for c in CONCURRENCY:
            ratios = [r[f"{name}@{c}"][rate] / r[f"{baseline}@{c}"][rate] for r in rounds]
            table[f"{name}/{baseline}@{c}"] = {"median": round(statistics.median(ratios), 2),
                                               "range": [round(min(ratios), 2), round(max(ratios), 2)]}
    return table


async def compare(calls: dict[str, Call], keys: list[str], requests: int, repeats: int, unit: str,
                  baseline: str) -> dict:
    """Alternating rounds of every variant in `calls` in this process; `summarize`d."""
    return summarize([await one_round(calls, keys, requests, unit) for _ in range(repeats)], unit, baseline)


async def warm_up(calls: dict[str, Call], keys: list[str]) -> None:
    """Each variant called once per key (the first `WARM_UP_KEYS`), unmeasured: a fresh replica's caches and lazy
    set-ups are filled before its round, as a replica's are after it has served for a while."""
    for call in calls.values():
        await measure(call, keys[:WARM_UP_KEYS], 32, min(len(keys), WARM_UP_KEYS), "warm")


def benchmark(variants: dict[str, tuple], modes: dict[str, str], call_of: Callable[[object], Call], keys: list[str],
              *, requests: int, repeats: int, unit: str, baseline: str, database_url: str, only: str | None,
              ready: Callable[[dict], None] = lambda handles: None) -> None:
    """Measure `variants` (`name: (deployment, settings)`), each in the Serve mode `modes` names for it (the
    stack's if unnamed), in `repeats` alternating rounds; print the `summarize`d table.

    Each round runs in child processes of this script, one per mode, each with a Ray of its own, its variants
    deployed, `ready(handles)` waited for and `warm_up`: the script is run again with `only` set to the
    comma-separated variants to measure, and prints that round as a `ROUND_LINE` of JSON."""
    if only is not None:
        with deployments({name: variants[name] for name in only.split(",")}) as handles:
            ready(handles)
            calls = {name: call_of(handle) for name, handle in handles.items()}
            asyncio.run(warm_up(calls, keys))
            print(ROUND_LINE + json.dumps(asyncio.run(one_round(calls, keys, requests, unit))), flush=True)
        return
    groups: dict[str, list[str]] = {}
    for name in variants:
        groups.setdefault(modes.get(name, "throughput"), []).append(name)
    rounds = []
    for _ in range(repeats):
        found: dict[str, dict] = {}
        for mode, names in groups.items():
            env = os.environ | SERVE_MODES[mode] | {"DATABASE_URL": database_url}
            child = subprocess.run([sys.executable, *sys.argv, "--only", ",".join(names)], env=env, check=True,
                                   stdout=subprocess.PIPE, text=True)
            found |= json.loads(next(line for line in child.stdout.splitlines()
                                     if line.startswith(ROUND_LINE))[len(ROUND_LINE):])
        rounds.append({k: found[k] for k in sorted(found, key=lambda k: (int(k.split("@")[1]), k))})
    print(json.dumps(summarize(rounds, unit, baseline), indent=2))


@contextmanager
def deployments(variants: dict[str, tuple]) -> Iterator[dict]:
    """Each variant, `name: (deployment, settings)`, as a Serve application of its own on a local Ray; yields
    their handles by name."""
    import ray
    from ray import serve

    from tandem.logs import serve_logging

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        # No CPU reservation: the variants share the machine's cores in turn, and more of them than cores would
        # otherwise wait for room.
        # Logging as the stack configures it (no access log line per request below DEBUG).
        yield {name: serve.run(deployment.options(name=name.capitalize(), ray_actor_options={"num_cpus": 0},
                                                  logging_config=serve_logging(settings))
                               .bind(settings), name=f"bench-{name}", route_prefix=None)
               for name, (deployment, settings) in variants.items()}
    finally:
        serve.shutdown()
        ray.shutdown()
