"""`tandem train lrurec` and `tandem eval lrurec` as a user runs them, on a ratings CSV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def tandem(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def ratings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # MovieLens column names; 60 users walking a 30-item cycle, so the next item is learnable.
    path = tmp_path_factory.mktemp("csv") / "ratings.csv"
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(60):
        lines += [f"{u},{(u + k) % 30},4.0,{1_600_000_000 + k * 60}" for k in range(12)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_writes_metrics_and_eval_reproduces_them(ratings: Path, tmp_path: Path, project_root: Path) -> None:
    out = tmp_path / "model"
    trained = tandem(
        "train",
        "lrurec",
        "--ratings",
        str(ratings),
        "--output",
        str(out),
        "--max-epochs",
        "8",
        "--hidden",
        "32",
        "--max-len",
        "16",
        "--batch-size",
        "8",
        "--lr",
        "0.005",
        "--seed",
        "1",
        "--no-shuffle-ties",
        cwd=project_root,
    )
    assert trained.returncode == 0, trained.stderr
    last = json.loads(trained.stdout.strip().splitlines()[-1])
    assert last == json.loads((out / "metrics.json").read_text())
    assert set(last["test"]) == {"MRR", "NDCG@5", "Recall@5", "NDCG@10", "Recall@10", "NDCG@20", "Recall@20"}
    assert last["users"] == 60 and last["items"] == 30 and last["train"]["shuffle_ties"] is False
    assert last["train"]["exclude_seen"] is True  # the default
    assert last["test"]["NDCG@10"] > last["most_popular_test"]["NDCG@10"]
    assert "epoch" in trained.stderr  # the progress bar
    evaluated = tandem("eval", "lrurec", "--model", str(out), "--ratings", str(ratings), cwd=project_root)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["test"] == last["test"]
    # The same ratings as ML-1M ships them (headerless, `::`) give the same figures.
    dat = tmp_path / "ratings.dat"
    dat.write_text("".join(line.replace(",", "::") + "\n" for line in ratings.read_text().splitlines()[1:]))
    evaluated = tandem("eval", "lrurec", "--model", str(out), "--ratings", str(dat), cwd=project_root)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["test"] == last["test"]


def test_a_bad_file_is_named_without_a_traceback(tmp_path: Path, project_root: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what,when\n1,2,3\n")
    result = tandem("train", "lrurec", "--ratings", str(bad), "--output", str(tmp_path / "m"), cwd=project_root)
    assert result.returncode != 0
    assert "no column named user_id or userId" in result.stderr and "Traceback" not in result.stderr


def test_train_ranker_on_a_saved_lrurec(ratings: Path, tmp_path: Path, project_root: Path) -> None:
    lrurec, ranker = tmp_path / "lrurec", tmp_path / "ranker"
    items = tmp_path / "items.csv"
    items.write_text("movieId,title\n" + "".join(f"{i},Film number {i} ({1990 + i})\n" for i in range(30)))
    args = ("--ratings", str(ratings), "--max-epochs", "2", "--hidden", "32", "--max-len", "16", "--output")
    assert tandem("train", "lrurec", *args, str(lrurec), cwd=project_root).returncode == 0
    trained = tandem("train", "ranker", "--ratings", str(ratings), "--items", str(items), "--lrurec", str(lrurec),
                     "--output", str(ranker), "--examples", "8", "--eval-users", "8", cwd=project_root)
    assert trained.returncode == 0, trained.stderr
    last = json.loads(trained.stdout.strip().splitlines()[-1])
    assert last["steps"] == 2 and last["test"]["users"] == 8 and last["lrurec"] == str(lrurec)
    assert last["negatives"] == "lrurec" and {"lrurec", "llm", "fused"} <= set(last["test"])
    assert json.loads((ranker / "metrics.json").read_text())["fusion"]["weight"] == last["fusion"]["weight"]
    assert {"adapter_config.json", "adapter_model.safetensors", "metrics.json"} <= {p.name for p in ranker.iterdir()}
    assert json.loads((ranker / "adapter_config.json").read_text())["r"] == 8
    assert "step" in trained.stderr  # the progress bar


def test_register_an_artifact_trained_elsewhere(ratings: Path, tmp_path: Path, project_root: Path,
                                                fresh_db: str) -> None:
    import os

    model = tmp_path / "model"
    args = ("--ratings", str(ratings), "--max-epochs", "1", "--hidden", "16", "--max-len", "8", "--output", str(model))
    assert tandem("train", "lrurec", *args, cwd=project_root).returncode == 0
    env = {**os.environ, "DATABASE_URL": fresh_db}
    run = subprocess.run([sys.executable, "-m", "ops.cli", "models", "register", "lrurec", str(model),
                          "--version", "imported-1"], cwd=project_root, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)
    assert (row["pipeline"], row["version"], row["status"], row["artifact_path"]) == (
        "lrurec", "imported-1", "active", str(model))
    missing = subprocess.run([sys.executable, "-m", "ops.cli", "models", "register", "ranker", str(tmp_path / "x")],
                             cwd=project_root, capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "no artifact folder" in missing.stderr and "Traceback" not in missing.stderr
