"""`tandem db import-korquad` and `tandem eval retrieval` as a user runs them, against a database of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def tandem(*args: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "DATABASE_URL": database_url})


def test_import_korquad_then_evaluate_bm25(fresh_db: str, project_root: Path) -> None:
    imported = tandem("db", "import-korquad", cwd=project_root, database_url=fresh_db)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout.splitlines()[-1])["passages"] == 964
    evaluated = tandem("eval", "retrieval", "--mode", "sparse", "--max-questions", "200", "--expand-keywords",
                       cwd=project_root, database_url=fresh_db)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.splitlines()[-1])
    sparse = report["sparse"]
    assert report["questions"] == 200 and sparse["top1"] <= sparse["top5"] <= sparse["top20"]
    assert sparse["top5"] > 0.9  # BM25 over morphemes on KorQuAD's 964 paragraphs
    assert "debug" not in evaluated.stderr
    assert report["sparse+keywords"]["questions"] == 200 and report["sparse+keywords"]["top20"] > 0.9


def test_dense_evaluation_without_an_encoder_says_what_to_do(fresh_db: str, project_root: Path) -> None:
    tandem("db", "import-korquad", cwd=project_root, database_url=fresh_db)
    evaluated = tandem("eval", "retrieval", "--mode", "dense", cwd=project_root, database_url=fresh_db)
    assert evaluated.returncode != 0 and "tandem train dpr" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr
