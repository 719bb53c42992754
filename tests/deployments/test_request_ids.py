"""Requests you can follow: each answer carries X-Request-ID (the client's own when sent), error bodies name it, and
every replica that handled a request logs it, as JSON in its Serve log file (the session runs at INFO, where each
replica writes an access line per request)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

LOGS = Path("/tmp/ray/session_latest/logs/serve")


def lines_of(request_id: str) -> list[dict]:
    found = []
    for path in LOGS.glob("replica_*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if request_id in line:
                found.append(json.loads(line))  # a line that is not JSON fails here
    return found


def test_a_request_is_followed_across_the_replicas_it_reaches(http: httpx.Client, trained: dict) -> None:
    request_id = f"follow-{uuid.uuid4().hex}"
    r = http.post("/v1/recommendations", json={"user_id": "1", "k": 3}, headers={"X-Request-ID": request_id})
    assert r.status_code == 200 and r.headers["x-request-id"] == request_id, r.text
    assert r.json()["ordered_by"] != "lrurec", r.json()  # so the LLM deployment handled it too
    wanted = {"tandem_Ingress", "tandem_Candidates", "tandem_LLMServer"}
    deadline = time.monotonic() + 30
    while not wanted <= {line["deployment"] for line in lines_of(request_id)}:
        assert time.monotonic() < deadline, f"replicas that logged {request_id}: {lines_of(request_id)}"
        time.sleep(0.5)
    lines = lines_of(request_id)
    assert all(line["request_id"] == request_id for line in lines), lines


def test_error_bodies_name_the_request(http: httpx.Client, serve_app: str) -> None:
    request_id = f"error-{uuid.uuid4().hex}"
    given = http.post("/v1/keywords", json={}, headers={"X-Request-ID": request_id})
    assert given.status_code == 422 and given.json()["error"]["request_id"] == request_id
    made = http.post("/v1/keywords", content=b"{", headers={"content-type": "application/json"})
    assert made.status_code == 400 and made.json()["error"]["request_id"] == made.headers["x-request-id"] != ""
    with httpx.Client(base_url=serve_app, timeout=30) as anonymous:
        refused = anonymous.get("/v1/books/questions", headers={"X-Request-ID": request_id})
        assert refused.status_code == 401 and refused.json()["error"]["request_id"] == request_id
