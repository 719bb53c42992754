"""`tandem bench load`: load one pipeline endpoint on this machine and report what it held.

Open loop: requests arrive as a Poisson process at a rate, whether or not earlier ones have answered (what
users do; it shows queueing). Closed loop: a fixed number of clients, each sending its next request when the
last one answers (what a benchmark of capacity does). Either runs in steps (`2:60,8:60,2:120` is rate or
concurrency 2 for 60 s, then 8, then 2), so a step load shows autoscaling; Serve's replica counts are read
from the Prometheus endpoint while it runs. Bodies come from the shared real data: MovieLens users,
KorQuAD questions, answer sets built from the book questions' examples.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from db.files.korquad_json import questions as korquad_questions
from db.files.ratings_csv import read_ratings
from models.books.questions import QUESTIONS

log = logging.getLogger("tandem.load")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_IN_FLIGHT = 2048  # an open loop past this has long stopped measuring the service
REPLICA_POLL_S = 2.0


class Step(BaseModel):
    level: float  # arrivals per second (open loop) or clients (closed loop)
    seconds: float


def parse_steps(text: str, seconds: float) -> list[Step]:
    """`8` (one step of `seconds`) or `level:seconds,level:seconds,...`."""
    steps = []
    for part in text.split(","):
        level, _, length = part.partition(":")
        steps.append(Step(level=float(level), seconds=float(length) if length else seconds))
    if any(s.level <= 0 or s.seconds <= 0 for s in steps):
        raise ValueError(f"steps must be positive level:seconds pairs, got {text!r}")
    return steps


@dataclass(frozen=True)
class Workload:
    path: str
    body: Callable[[random.Random], dict]


def book_answers(rng: random.Random) -> dict[str, str]:
    return {q.key: rng.choice(q.options).label for q in QUESTIONS}


def workloads(data_dir: Path) -> dict[str, Workload]:
    """Per endpoint, a request body drawn from the real data."""
    users = list(dict.fromkeys(r.user_id for r in read_ratings(data_dir / "ml-latest-small" / "ratings.csv")))
    questions = korquad_questions(data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json")
    return {
        "recommendations": Workload("/v1/recommendations", lambda r: {"user_id": r.choice(users), "k": 10}),
        "candidates": Workload("/v1/candidates", lambda r: {"user_id": r.choice(users), "k": 20}),
        "qa": Workload("/v1/qa", lambda r: {"question": r.choice(questions), "max_tokens": 32}),
        "retrieve": Workload("/v1/retrieve", lambda r: {"query": r.choice(questions), "top_k": 5}),
        "keywords": Workload("/v1/keywords", lambda r: {"text": r.choice(questions)}),
        "books": Workload("/v1/books/recommendations", lambda r: {"answers": book_answers(r), "n": 3}),
        "completions": Workload("/v1/completions", lambda r: {"prompt": r.choice(questions), "max_tokens": 16}),
    }


@dataclass
class Outcome:
    sent_s: float  # since the start of the run
    latency_s: float
    status: int  # 0 when no HTTP answer came (connection refused, timeout)
    degraded: bool = False  # answered without a stage (`"fallback": true`, e.g. LRURec's order)


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    replicas: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (seconds, deployment -> count)
    seconds: float = 0.0


def _fell_back(response: httpx.Response) -> bool:
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith("application/json"):
        return False
    body = response.json()
    return isinstance(body, dict) and body.get("fallback") is True


async def _send(client: httpx.AsyncClient, workload: Workload, rng: random.Random, started: float,
                run: Run) -> float:
    """Sends one request and records its outcome; returns the seconds its Retry-After header asks for (0 without)."""
    sent, wait = time.monotonic(), 0.0
    try:
        response = await client.post(workload.path, json=workload.body(rng))
        status, degraded = response.status_code, _fell_back(response)
        if status in (429, 503) and (after := response.headers.get("retry-after", "")).isdigit():
            wait = float(after)
    except httpx.HTTPError:
        status, degraded = 0, False
    run.outcomes.append(Outcome(sent - started, time.monotonic() - sent, status, degraded))
    return wait


async def open_loop(client: httpx.AsyncClient, workload: Workload, steps: list[Step], rng: random.Random,
                    started: float, run: Run, max_requests: int) -> None:
    in_flight: set[asyncio.Task] = set()
    at, sent = 0.0, 0
    for step_end, step in zip(np.cumsum([s.seconds for s in steps]), steps, strict=True):
        while sent < max_requests:
            at += rng.expovariate(step.level)
            if at >= step_end:
                at = step_end  # arrivals are memoryless: the next step draws afresh from here
                break
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            if len(in_flight) >= MAX_IN_FLIGHT:
                log.warning("open loop saturated; arrival dropped", extra={"in_flight": len(in_flight)})
                continue
            task = asyncio.create_task(_send(client, workload, rng, started, run))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
    await asyncio.gather(*in_flight)


async def closed_loop(client: httpx.AsyncClient, workload: Workload, steps: list[Step], rng: random.Random,
                      started: float, run: Run, max_requests: int, honor_retry_after: bool = False) -> None:
    sent = 0

    async def client_loop(deadline: float) -> None:
        nonlocal sent
        while time.monotonic() < deadline and sent < max_requests:
            sent += 1
            wait = await _send(client, workload, rng, started, run)
            if honor_retry_after and wait:  # as a well-behaved client does, instead of asking again at once
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    for step_end, step in zip(np.cumsum([s.seconds for s in steps]), steps, strict=True):
        await asyncio.gather(*(client_loop(started + step_end) for _ in range(int(step.level))))


Sample = tuple[str, dict[str, str], float]


def scrape(metrics_url: str) -> list[Sample]:
    """Every sample of a Prometheus endpoint, read with Prometheus' own text-format parser."""
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(
        httpx.get(metrics_url, timeout=10).text) for s in family.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name` over every label set that has `labels` (replicas, deployments, other tags)."""
    return sum(value for n, have, value in samples if n == name and all(have.get(k) == v for k, v in labels.items()))


def replica_counts(metrics_url: str) -> dict[str, int]:
    """Healthy replicas per deployment, from Serve's own gauge."""
    counts: dict[str, int] = {}
    text = httpx.get(metrics_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "ray_serve_deployment_replica_healthy":
            for sample in family.samples:
                name = sample.labels.get("deployment", "?")
                counts[name] = counts.get(name, 0) + int(sample.value)
    return counts


async def watch_replicas(metrics_url: str, started: float, run: Run) -> None:
    while True:
        try:
            # A scrape carries the gauges of the processes that have exported since the last one: a deployment
            # missing from it keeps its last known count rather than dropping to zero.
            counts = await asyncio.to_thread(replica_counts, metrics_url)
            known = run.replicas[-1][1] if run.replicas else {}
            run.replicas.append((time.monotonic() - started, known | counts))
        except httpx.HTTPError as exc:
            log.warning("metrics endpoint unreachable", extra={"error": str(exc)})
        await asyncio.sleep(REPLICA_POLL_S)


async def load(base_url: str, workload: Workload, steps: list[Step], closed: bool, max_requests: int,
               timeout_s: float, seed: int, metrics_url: str | None = None,
               headers: dict[str, str] | None = None, honor_retry_after: bool = False) -> Run:
    """`headers` go with every request (the API key); with `honor_retry_after`, a closed loop's client waits as a
    refusal's Retry-After asks before its next request."""
    if urlsplit(base_url).hostname not in LOOPBACK:
        raise ValueError(f"load is only sent to this machine (127.0.0.1, localhost, ::1), not {base_url}")
    run, rng = Run(), random.Random(seed)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits, headers=headers) as client:
        started = time.monotonic()
        watcher = asyncio.create_task(watch_replicas(metrics_url, started, run)) if metrics_url else None
        if closed:
            await closed_loop(client, workload, steps, rng, started, run, max_requests, honor_retry_after)
        else:
            await open_loop(client, workload, steps, rng, started, run, max_requests)
        run.seconds = time.monotonic() - started
        if watcher is not None:
            watcher.cancel()
    return run


def summary(run: Run, steps: list[Step]) -> dict:
    """Throughput, latency percentiles of answered requests, error rate: overall and per step."""

    def stats(outcomes: list[Outcome], seconds: float) -> dict:
        ok = [o.latency_s for o in outcomes if 200 <= o.status < 500]
        errors = sum(1 for o in outcomes if not 200 <= o.status < 500)
        p50, p95, p99 = (np.percentile(ok, [50, 95, 99]) * 1000).round(1).tolist() if ok else (None,) * 3
        return {"requests": len(outcomes), "answered_per_s": round(len(ok) / seconds, 3) if seconds else None,
                "error_rate": round(errors / len(outcomes), 4) if outcomes else None,
                "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
                "rejected_4xx": sum(1 for o in outcomes if 400 <= o.status < 500)}

    per_step, begin = [], 0.0
    for step in steps:
        inside = [o for o in run.outcomes if begin <= o.sent_s < begin + step.seconds]
        per_step.append({"level": step.level, "seconds": step.seconds, **stats(inside, step.seconds)})
        begin += step.seconds
    return {**stats(run.outcomes, run.seconds), "seconds": round(run.seconds, 1), "steps": per_step}


def plot(run: Run, steps: list[Step], title: str, level_name: str, path: Path, bin_s: float = 5.0) -> None:
    """Latency of every request over time with binned p50/p95, answered/s, the load level and replicas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if run.replicas else 2
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3 * panels), sharex=True)
    sent = np.array([o.sent_s for o in run.outcomes])
    latency = np.array([o.latency_s for o in run.outcomes])
    failed = np.array([not 200 <= o.status < 500 for o in run.outcomes], dtype=bool)
    ax = axes[0]
    if len(sent):
        ax.scatter(sent[~failed], latency[~failed], s=4, alpha=0.4, label="answered")
        ax.scatter(sent[failed], latency[failed], s=8, color="red", label="error")
        edges = np.arange(0, run.seconds + bin_s, bin_s)
        centers, p50, p95 = [], [], []
        for lo in edges[:-1]:
            inside = latency[(sent >= lo) & (sent < lo + bin_s) & ~failed]
            if len(inside):
                centers.append(lo + bin_s / 2)
                p50.append(np.percentile(inside, 50))
                p95.append(np.percentile(inside, 95))
        ax.plot(centers, p50, color="black", label="p50")
        ax.plot(centers, p95, color="orange", label="p95")
    ax.set_ylabel("latency (s)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")

    ax = axes[1]
    done = np.array([o.sent_s + o.latency_s for o in run.outcomes if 200 <= o.status < 500])
    edges = np.arange(0, max(run.seconds, bin_s) + bin_s, bin_s)
    counts, _ = np.histogram(done, bins=edges)
    ax.step(edges[:-1], counts / bin_s, where="post", label="answered/s")
    level_t = np.concatenate([[0], np.cumsum([s.seconds for s in steps])])
    ax.step(level_t, [steps[0].level, *[s.level for s in steps]], where="pre", linestyle="--", color="gray",
            label=level_name)
    ax.set_ylabel("per second / level")
    ax.legend(loc="upper left", fontsize="small")

    if run.replicas:
        ax = axes[2]
        names = sorted({name for _, counts in run.replicas for name in counts})
        for name in names:
            ax.step([t for t, _ in run.replicas], [c.get(name, 0) for _, c in run.replicas], where="post",
                    label=name)
        ax.set_ylabel("replicas")
        ax.legend(loc="upper left", fontsize="small")
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
