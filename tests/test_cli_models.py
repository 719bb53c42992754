"""`tandem models register | list | activate | rollback | gc` as an operator runs them, against the artifact store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg


def tandem(*args: str, env: dict[str, str], cwd: Path) -> dict | list:
    done = subprocess.run([sys.executable, "-m", "ops.cli", "models", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines if args[0] == "list" else lines[0]


def folder(root: Path, content: str) -> Path:
    root.mkdir(parents=True)
    (root / "weights.bin").write_text(content * 1000)
    return root


def chunk_hashes(url: str) -> set[str]:
    async def read() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            return {r["sha256"] for r in await conn.fetch("SELECT DISTINCT sha256 FROM artifact_chunks")}
        finally:
            await conn.close()

    return asyncio.run(read())


def test_register_list_rollback_activate_and_gc(tmp_path: Path, project_root: Path, fresh_db: str) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_db, "TANDEM_VAR_DIR": str(tmp_path / "var")}
    first, second = folder(tmp_path / "a", "first"), folder(tmp_path / "b", "second")
    v1 = tandem("register", "kobart", str(first), "--version", "v1", env=env, cwd=project_root)
    v2 = tandem("register", "kobart", str(second), "--version", "v2", env=env, cwd=project_root)
    again = tandem("register", "kobart", str(second), "--version", "v2-again", "--no-activate", env=env,
                   cwd=project_root)
    assert v1["artifact_url"] == "postgres" and v1["artifact_size"] > 5000
    assert v1["artifact_sha256"] != v2["artifact_sha256"] == again["artifact_sha256"]  # same files, same hash
    assert chunk_hashes(fresh_db) == {v1["artifact_sha256"], v2["artifact_sha256"]}

    listed = tandem("list", "--pipeline", "kobart", env=env, cwd=project_root)
    assert [(v["version"], v["status"]) for v in listed] == [("v2-again", "registered"), ("v2", "active"),
                                                             ("v1", "retired")]
    assert tandem("rollback", "kobart", env=env, cwd=project_root)["version"] == "v1"
    assert tandem("activate", "v2-again", env=env, cwd=project_root)["status"] == "active"
    assert tandem("rollback", "kobart", env=env, cwd=project_root)["version"] == "v1"

    # Keep the active one and nothing else: v2 and v2-again go, and so do their chunks; v1's stay.
    gc = tandem("gc", "--keep", "0", env=env, cwd=project_root)
    assert sorted(gc["versions_deleted"]) == ["kobart/v2", "kobart/v2-again"]
    assert gc["artifacts_deleted"] == [v2["artifact_sha256"]]
    assert chunk_hashes(fresh_db) == {v1["artifact_sha256"]}
    assert [v["version"] for v in tandem("list", env=env, cwd=project_root)] == ["v1"]

    refused = subprocess.run([sys.executable, "-m", "ops.cli", "models", "rollback", "kobart"], cwd=project_root,
                             capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "no earlier kobart version" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_object_store_by_url(tmp_path: Path, project_root: Path, fresh_db: str) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    env = {**os.environ, "DATABASE_URL": fresh_db, "TANDEM_VAR_DIR": str(tmp_path / "var"),
           "TANDEM_ARTIFACT_URL": f"file://{bucket}"}
    v1 = tandem("register", "kobart", str(folder(tmp_path / "a", "first")), "--version", "v1", env=env,
                cwd=project_root)
    assert v1["artifact_url"] == f"file://{bucket}/{v1['artifact_sha256']}.tar"
    (bucket / ("f" * 64 + ".tar")).write_bytes(b"an upload no version names")
    gc = tandem("gc", env=env, cwd=project_root)
    assert gc["artifacts_deleted"] == [f"file://{bucket}/{'f' * 64}.tar"]
    assert [p.name for p in bucket.iterdir()] == [f"{v1['artifact_sha256']}.tar"]
    assert chunk_hashes(fresh_db) == set()
