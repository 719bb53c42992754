"""Model versions through the admin routes: artifacts served from the store, not the trainer's folder; rollback;
a cached copy altered on disk fetched again."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx

from tandem.settings import Settings
from tests.conftest import wait_for_run, wait_for_version


def versions(http: httpx.Client) -> dict[str, dict]:
    answer = http.get("/v1/model-versions", params={"pipeline": "lrurec"})
    assert answer.status_code == 200, answer.text
    return {v["version"]: v for v in answer.json()}


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_a_retrained_model_is_served_from_the_store_rolled_back_and_refetched_when_altered(
        http: httpx.Client, settings: Settings, trained: dict) -> None:
    cache = settings.var_dir / "artifact-cache"
    first = next(v for v in versions(http).values() if v["status"] == "active")
    assert first["artifact_url"] == "postgres" and len(first["artifact_sha256"]) == 64

    r = http.post("/v1/train", json={"pipeline": "lrurec", "lrurec": {"max_epochs": 1, "hidden": 16}})
    assert r.status_code == 202, r.text
    run = wait_for_run(http, r.json()["run_id"])
    assert run["status"] == "succeeded", run["error"]
    second = versions(http)[run["model_version"]]
    wait_for_version(http, second["version"])
    served = cache / second["artifact_sha256"]
    assert served.is_dir() and digest(served) == digest(Path(second["artifact_path"]))

    # The trainer's own folders and this node's copy of the first version gone: a rollback has only the store.
    for version in (first, second):
        shutil.rmtree(version["artifact_path"])
    shutil.rmtree(cache / first["artifact_sha256"])
    back = http.post("/v1/model-versions/lrurec/rollback")
    assert back.status_code == 200 and back.json()["version"] == first["version"], back.text
    wait_for_version(http, first["version"])
    assert (cache / first["artifact_sha256"]).is_dir()
    assert http.post("/v1/recommendations", json={"user_id": "1", "k": 3}).status_code == 200

    # A cached file altered on disk is noticed when the version is loaded again, and fetched again.
    intact = digest(served)
    weights = next(p for p in served.rglob("*") if p.is_file() and p.stat().st_size > 1000)
    weights.write_bytes(b"\0" * weights.stat().st_size)
    again = http.post(f"/v1/model-versions/lrurec/{second['version']}/activate")
    assert again.status_code == 200 and again.json()["status"] == "active", again.text
    wait_for_version(http, second["version"])
    assert digest(served) == intact

    listed = versions(http)
    assert listed[second["version"]]["status"] == "active" and listed[first["version"]]["status"] == "retired"
    assert listed[first["version"]]["activated_at"] < listed[second["version"]]["activated_at"]


def test_unknown_models_and_versions_are_refused(http: httpx.Client, trained: dict) -> None:
    unknown = http.post("/v1/model-versions/bert/rollback")
    assert unknown.status_code == 404 and "no model named 'bert'" in unknown.json()["error"]["message"]
    missing = http.post("/v1/model-versions/lrurec/no-such-version/activate")
    assert missing.status_code == 404 and "no lrurec version 'no-such-version'" in missing.json()["error"]["message"]
    assert http.get("/v1/model-versions", params={"pipeline": "bert"}).status_code == 404
