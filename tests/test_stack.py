"""`tandem run` end to end, as a new user runs it: embedded PostgreSQL, Ray and Serve come up on an empty database,
the first-run bootstrap loads the shared data and trains a quick model of every pipeline while they answer, every
pipeline then answers from its own models, and all stops on a stop signal. The run starts where an earlier run was
killed outright and left its PostgreSQL running: it adopts that server and stops it with everything else."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tandem.settings import Settings
from tests.conftest import free_port

START_TIMEOUT_S = 420
BOOTSTRAP_TIMEOUT_S = 900
# The bootstrap's steps as they run on first start, each training cut to its smallest (the real quick preset's
# time is measured in docs/benchmarks.md).
TINY = {"lrurec": {"max_epochs": 1, "hidden": 32, "max_len": 20}, "ranker": {"examples": 4, "eval_users": 4},
        "dpr": {"max_questions": 40, "inverse_cloze": False, "hard_negatives": False}, "qa": {"examples": 2},
        "kobart": {"epochs": 1, "max_pairs": 100, "holdout": 0.01}}


def _postgres_on(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


# A process that holds the embedded server and dies without letting go of it, as a killed run does.
ORPHAN = """
import os, signal, sys
from pathlib import Path
from db.server import embedded_server
with embedded_server(Path(sys.argv[1])):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _start(env: dict[str, str], project_root: Path) -> tuple[subprocess.Popen, list[str]]:
    """`tandem run`, its console read into a list; returns once it says it is up."""
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "run"], cwd=project_root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        _wait_for_line(lines, proc, "Press Ctrl-C", START_TIMEOUT_S)
    except BaseException:
        proc.kill()
        raise
    return proc, lines


def _wait_for_line(lines: list[str], proc: subprocess.Popen, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in lines):
        assert proc.poll() is None, "tandem run exited early:\n" + "".join(lines)
        assert time.monotonic() < deadline, f"no {text!r} from tandem run:\n" + "".join(lines)
        time.sleep(1)


def _every_pipeline_answers_from_its_own_models(base: str, key: str) -> None:
    with httpx.Client(base_url=base, timeout=300, headers={"Authorization": f"Bearer {key}"}) as http:
        rec = http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json()
        assert rec["ordered_by"] == "fused" and rec["adapter"] == "ranker", rec
        assert all(v.endswith("-quick") for v in rec["model_versions"].values()), rec["model_versions"]
        qa = http.post("/v1/qa", json={"question": "임진왜란은 몇 년에 일어났는가?", "max_tokens": 16}).json()
        assert qa["answered"] and qa["model"].endswith(":qa") and qa["adapter_version"].endswith("-quick"), qa
        found = http.post("/v1/retrieve", json={"query": "임진왜란", "mode": "dense"}).json()
        assert found["passages"] and found["index_version"].endswith("-quick"), found
        keywords = http.post("/v1/keywords", json={"text": "이사화물 통관예약을 하면 뭐가 좋나요?"}).json()
        assert keywords["model"] == "kobart" and keywords["model_version"].endswith("-quick"), keywords
        books = http.post("/v1/books/recommendations", json={"answers": {
            "mood": "지쳐 있어요", "effect": "위로받고 싶어요", "job": "개발자", "situation": "퇴근길 지하철",
            "depth": "가볍게"}, "n": 2}).json()
        assert len(books["books"]) == 2 and books["mode"] == "hybrid", books


@pytest.mark.own_cluster
def test_run_adopts_a_killed_runs_database_serves_then_stops_everything(
    base_settings: Settings, tmp_path: Path, project_root: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TANDEM_DATABASE_URL", "TANDEM_ADMIN_KEY")}
    env.update(
        {
            "TANDEM_VAR_DIR": str(tmp_path / "var"),
            # Reuse the checkout's built models instead of building them again under the new var dir.
            "TANDEM_LLM_MODEL": base_settings.llm_path,
            "TANDEM_BERT_MODEL": base_settings.bert_path,
            "TANDEM_BART_MODEL": base_settings.bart_path,
            "TANDEM_PORT": str(port),
            "TANDEM_METRICS_PORT": str(metrics_port),
            "TANDEM_LLM_KV_CACHE_GIB": "0.5",
            "TANDEM_LLM_MERGED_COMPILED": "false",  # as in the session's stack (tests/conftest.py)
            "TANDEM_BOOTSTRAP_OPTIONS": json.dumps(TINY),
        }
    )
    pgdata = tmp_path / "var" / "pgdata"
    orphaned = subprocess.run([sys.executable, "-c", ORPHAN, str(pgdata)], cwd=project_root, env=env, timeout=120)
    assert orphaned.returncode == -signal.SIGKILL
    [orphan] = _postgres_on(pgdata)

    proc, lines = _start(env, project_root)
    try:
        output = "".join(lines)
        assert _postgres_on(pgdata) == [orphan], "the run did not adopt the PostgreSQL left running"
        assert f"http://127.0.0.1:{port}" in output and f"127.0.0.1:{metrics_port}/metrics" in output
        # No key configured: the run makes one and shows it; nothing but health and the page answers without it.
        key = re.search(r"admin key\s+(tdm_\S+)", output).group(1)

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"
        # The bootstrap started with the stack (readiness while it runs: tests/deployments/test_bootstrap_readiness.py)
        # and the console follows it to the end.
        _wait_for_line(lines, proc, "Bootstrap finished", BOOTSTRAP_TIMEOUT_S)
        output = "".join(lines)
        assert "First run: loading the shared data" in output and "every pipeline answers from its own" in output
        finished = httpx.get(f"{base}/readyz", timeout=10).json()
        assert finished["bootstrap"]["status"] == "finished", finished["bootstrap"]
        assert {s["status"] for s in finished["bootstrap"]["steps"]} == {"done"}, finished["bootstrap"]
        assert all(f"bootstrap  {s['name']}" in output for s in finished["bootstrap"]["steps"]), output
        assert {p["status"] for p in finished["pipelines"].values()} == {"ready"}, finished["pipelines"]
        _every_pipeline_answers_from_its_own_models(base, key)
        completion = {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
        refused = httpx.post(f"{base}/v1/completions", json=completion, timeout=30)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", refused.text
        r = httpx.post(f"{base}/v1/completions", json=completion, timeout=120,
                       headers={"Authorization": f"Bearer {key}"})
        assert "Paris" in r.json()["choices"][0]["text"]
        assert (pgdata / "PG_VERSION").exists() and _postgres_on(pgdata) == [orphan]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("raylet" in " ".join(c.cmdline()) for c in children)

        # SIGTERM, as a process manager stops it; Ctrl-C's SIGINT and SIGHUP take the same path (ops/stack.py).
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, "".join(lines)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"orphans left behind: {[p.cmdline()[:3] for p in alive]}"
        assert not _postgres_on(pgdata), "the adopted PostgreSQL is still running"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_keys_on_an_open_address_refuses_to_start(project_root: Path, tmp_path: Path) -> None:
    """TANDEM_AUTH=off is for loopback: asked to bind every interface without keys, `tandem run` says why and
    starts nothing (no database folder, no Ray)."""
    env = os.environ | {"TANDEM_AUTH": "off", "TANDEM_HOST": "0.0.0.0", "TANDEM_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "ops.cli", "run"], cwd=project_root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "TANDEM_AUTH=off on 0.0.0.0" in done.stderr, (done.returncode, done.stderr)
    assert not (tmp_path / "var").exists()
