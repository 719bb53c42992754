"""`tandem run`'s console during the first-run bootstrap: each step once as it starts and ends, then the end; and
nothing at all on a later start, when the bootstrap ended before. Fed by an HTTP server answering /readyz as the
stack does at each moment (the stack itself: tests/test_stack.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console

from ops.stack import follow_bootstrap


def _steps(*statuses: str) -> list[dict]:
    return [{"name": n, "status": s, "detail": None, "run_id": None, "progress": None}
            for n, s in zip(("movielens", "lrurec", "kobart"), statuses, strict=True)]


@pytest.fixture
def readyz() -> Iterator[tuple[str, list[dict]]]:
    """A /readyz that answers each queued body in turn (the last one again and again)."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(bodies.pop(0) if len(bodies) > 1 else bodies[0]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", bodies
    server.shutdown()


def test_each_step_is_printed_once_then_the_end(readyz: tuple[str, list[dict]]) -> None:
    url, bodies = readyz
    bodies += [{"bootstrap": {"status": "running", "eta_s": 600, "steps": _steps("running", "queued", "queued")}},
               {"bootstrap": {"status": "running", "eta_s": 500, "steps": _steps("done", "running", "queued")}},
               {"bootstrap": {"status": "running", "eta_s": 500, "steps": _steps("done", "running", "queued")}},
               {"bootstrap": {"status": "finished", "eta_s": None, "steps": _steps("done", "done", "failed")}}]
    console = Console(record=True, width=200)
    follow_bootstrap(console, url, poll_s=0.01)
    printed = console.export_text()
    lines = [line.split() for line in printed.splitlines() if line.strip().startswith("bootstrap")]
    assert [line[1:3] for line in lines] == [["movielens", "running"], ["movielens", "done"], ["lrurec", "running"],
                                             ["lrurec", "done"], ["kobart", "failed"]]
    assert "Bootstrap finished, but kobart failed" in printed


def test_a_bootstrap_that_ended_before_this_start_prints_nothing(readyz: tuple[str, list[dict]]) -> None:
    url, bodies = readyz
    bodies.append({"bootstrap": {"status": "finished", "eta_s": None, "steps": _steps("done", "done", "done")}})
    console = Console(record=True)
    follow_bootstrap(console, url, poll_s=0.01)
    assert console.export_text() == ""
