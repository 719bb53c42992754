"""The artifact part of `tandem cluster-smoke`: models trained through the API on one node and served on another
from the store alone, each node with its own artifact cache.

Two LRURec versions are trained through `POST /v1/train`; the trainer's output folders are then deleted, so a
replica can only have a version from the store. The replica serving LRURec must hold the versions in its own
node's cache and the other node's cache must not; a file of the first version's cached copy is altered, a
rollback must serve that version again, and the copy it loads must be the stored bytes again.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from pathlib import Path

import httpx

from db import connect
from db.importers import import_ratings

TRAIN = {"pipeline": "lrurec", "lrurec": {"max_epochs": 1, "hidden": 16}}


def import_movielens(db_url: str, data_dir: Path) -> None:
    async def load() -> None:
        async with connect(db_url) as conn:
            folder = data_dir / "ml-latest-small"
            await import_ratings(conn, folder / "ratings.csv", folder / "movies.csv")

    asyncio.run(load())


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def _serving(client: httpx.Client, version: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").json()["models"].get("lrurec") == version:
            return True
        time.sleep(1)
    return False


def _train(client: httpx.Client, timeout_s: float) -> dict:
    run_id = client.post("/v1/train", json=TRAIN).raise_for_status().json()["run_id"]
    deadline = time.monotonic() + timeout_s
    while (run := client.get(f"/v1/train/{run_id}").json())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training run {run_id} still {run['status']} after {timeout_s:g} s")
        time.sleep(2)
    if run["status"] != "succeeded":
        raise RuntimeError(f"training run {run_id} {run['status']}: {run['error']}")
    versions = client.get("/v1/model-versions", params={"pipeline": "lrurec"}).json()
    return next(v for v in versions if v["version"] == run["model_version"])


def artifacts_across_nodes(url: str, auth: dict[str, str], caches: dict[str, Path], candidates_node: str,
                           var_dirs: dict[str, Path], timeout_s: float) -> dict:
    """`caches` maps each node id to its cache folder; `candidates_node` runs the LRURec replica (on the head
    node); training runs on the worker node, whose var dir `var_dirs["worker"]` the application sees at
    `var_dirs["head"]`."""
    serving_cache = caches[candidates_node]
    other_caches = [c for node, c in caches.items() if node != candidates_node]

    def on_node(path: str, node: str) -> Path:
        return var_dirs[node] / Path(path).relative_to(var_dirs["head"])

    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        first = _train(client, timeout_s)
        first_served = _serving(client, first["version"], timeout_s)
        second = _train(client, timeout_s)
        second_served = _serving(client, second["version"], timeout_s)
        written = {node: all(on_node(v["artifact_path"], node).is_dir() for v in (first, second))
                   for node in var_dirs}
        for version in (first, second):
            shutil.rmtree(on_node(version["artifact_path"], "worker"), ignore_errors=True)
        copy = serving_cache / first["artifact_sha256"]
        intact = _digest(copy) if copy.is_dir() else None
        altered = next((p for p in sorted(copy.rglob("*")) if p.is_file() and p.stat().st_size > 1000), None)
        if altered is not None:
            altered.write_bytes(b"\0" * altered.stat().st_size)
        rollback = client.post("/v1/model-versions/lrurec/rollback")
        rolled_back = rollback.status_code == 200 and _serving(client, first["version"], timeout_s)
        recommended = client.post("/v1/recommendations", json={"user_id": "1", "k": 3}).status_code
    report = {
        "trained": [first["version"], second["version"]],
        "stored_in": sorted({first["artifact_url"], second["artifact_url"]}),
        "served_after_training": first_served and second_served,
        "in_serving_node_cache": all((serving_cache / v["artifact_sha256"]).is_dir() for v in (first, second)),
        "in_other_node_cache": any((c / v["artifact_sha256"]).exists() for c in other_caches for v in (first, second)),
        "trainer_output_on_training_node_only": written["worker"] and not written["head"],
        "trainer_output_left": any(on_node(v["artifact_path"], "worker").exists() for v in (first, second)),
        "rolled_back": rolled_back,
        "altered_copy_fetched_again": altered is not None and copy.is_dir() and _digest(copy) == intact,
        "recommendation_status": recommended,
    }
    report["ok"] = (report["served_after_training"] and report["in_serving_node_cache"]
                    and report["trainer_output_on_training_node_only"]
                    and not report["in_other_node_cache"] and not report["trainer_output_left"]
                    and rolled_back and report["altered_copy_fetched_again"] and recommended == 200)
    return report
