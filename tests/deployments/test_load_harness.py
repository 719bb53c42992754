"""`tandem bench load` against the running application: both loops, steps, the report and the plot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ops.loadtest import Outcome, Step, load, parse_steps, plot, summary, workloads
from tandem.settings import Settings
from tests.conftest import AUTH


def test_steps_parse_and_bad_ones_are_refused() -> None:
    assert parse_steps("4", 30) == [Step(level=4, seconds=30)]
    assert parse_steps("1:10,8:20", 30) == [Step(level=1, seconds=10), Step(level=8, seconds=20)]
    with pytest.raises(ValueError, match="positive"):
        parse_steps("0:10", 30)


def test_load_is_only_sent_to_this_machine(settings: Settings) -> None:
    keywords = workloads(settings.data_dir)["keywords"]
    with pytest.raises(ValueError, match="only sent to this machine"):
        asyncio.run(load("http://example.com", keywords, [Step(level=1, seconds=1)], True, 10, 5, 0))


def in_flight_at_most(outcomes: list[Outcome], start_s: float, end_s: float) -> int:
    """The most requests out at once among those sent in [start_s, end_s)."""
    edges = sorted(edge for o in outcomes if start_s <= o.sent_s < end_s
                   for edge in ((o.sent_s, 1), (o.sent_s + o.latency_s, -1)))
    most = out = 0
    for _, step in edges:
        out += step
        most = max(most, out)
    return most


def test_closed_loop_steps_report_and_plot(serve_app: str, settings: Settings, metrics_url: str,
                                           tmp_path: Path) -> None:
    steps = [Step(level=1, seconds=3), Step(level=4, seconds=3)]
    run = asyncio.run(load(serve_app, workloads(settings.data_dir)["keywords"], steps, True, 10_000, 60, 0,
                           metrics_url, AUTH))
    report = summary(run, steps)
    assert report["requests"] > 0 and report["error_rate"] == 0.0, report
    assert {o.status for o in run.outcomes} == {200}
    first, second = report["steps"]
    assert first["requests"] > 0 and second["requests"] > 0
    # One client in the first step: its requests never overlap; four in the second: at some point four are out.
    assert in_flight_at_most(run.outcomes, 0, 3) == 1 and in_flight_at_most(run.outcomes, 3, 6) == 4
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert run.replicas and run.replicas[-1][1].get("Keywords") == 1  # read from Serve's gauge while loading
    plot(run, steps, "keywords", "clients", tmp_path / "load.png")
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_sends_at_the_asked_rate(serve_app: str, settings: Settings) -> None:
    steps = [Step(level=20, seconds=3)]
    run = asyncio.run(load(serve_app, workloads(settings.data_dir)["candidates"], steps, False, 10_000, 60, 0,
                           headers=AUTH))
    # Poisson arrivals at 20/s for 3 s: 60 expected, and far outside 30..90 only by a broken generator.
    assert 30 <= len(run.outcomes) <= 90, len(run.outcomes)
    assert max(o.sent_s for o in run.outcomes) < 3.0  # the arrival schedule's own clock, not a measured time
    assert all(o.status in (200, 404, 503) for o in run.outcomes)  # answered, whether a model is trained or not
