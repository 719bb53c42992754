"""`tandem run` end to end: embedded PostgreSQL, Ray and Serve come up, answer, and all stop on Ctrl-C."""

from __future__ import annotations

import os
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


def _postgres_on(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.mark.own_cluster
def test_run_serves_then_stops_everything_on_ctrl_c(
    base_settings: Settings, tmp_path: Path, project_root: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TANDEM_DATABASE_URL")}
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
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "run"],
        cwd=project_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any("Press Ctrl-C" in line for line in lines):
            assert proc.poll() is None, "tandem run exited early:\n" + "".join(lines)
            assert time.monotonic() < deadline, "tandem run did not come up:\n" + "".join(lines)
            time.sleep(1)
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}" in output and f"127.0.0.1:{metrics_port}/metrics" in output

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"
        r = httpx.post(
            f"{base}/v1/completions",
            json={"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0},
            timeout=120,
        )
        assert "Paris" in r.json()["choices"][0]["text"]
        pgdata = tmp_path / "var" / "pgdata"
        assert (pgdata / "PG_VERSION").exists() and _postgres_on(pgdata)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("raylet" in " ".join(c.cmdline()) for c in children)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=180) == 0, "".join(lines)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"orphans left behind: {[p.cmdline()[:3] for p in alive]}"
        assert not _postgres_on(pgdata), "embedded PostgreSQL still running"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
