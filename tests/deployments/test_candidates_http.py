"""LRURec candidates over HTTP: trained from the database, batched, swapped live, with clear errors."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.lrurec.checkpoint import Checkpoint
from models.lrurec.recommender import Recommender
from tandem.settings import Settings
from tests.conftest import AUTH, QUICK, wait_for_version
from training.lrurec import TrainRequest, run_training


def history_of(http: httpx.Client, user: str) -> list[str]:
    return [x["item_id"] for x in http.get("/v1/interactions", params={"user_id": user, "limit": 10_000}).json()]


def test_training_from_the_database_registers_and_beats_popularity(trained: dict, pg_url: str) -> None:
    assert trained["test"]["NDCG@10"] > trained["most_popular_test"]["NDCG@10"]
    assert trained["device"] == "cpu"  # no GPU share for training (TANDEM_TRAIN_NUM_GPUS=0)

    async def rows():
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetch(
                """SELECT v.status, v.artifact_path, r.status AS run FROM model_versions v
                   JOIN training_runs r ON r.id = v.training_run_id WHERE v.version = $1""",
                trained["version"],
            )
        finally:
            await conn.close()

    (row,) = asyncio.run(rows())
    assert (row["status"], row["run"], row["artifact_path"]) == ("active", "succeeded", trained["artifact"])


def test_candidates_for_a_user_exclude_the_history(http: httpx.Client, trained: dict) -> None:
    r = http.post("/v1/candidates", json={"user_id": "1", "k": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == trained["version"] and body["fallback"] is False
    ids = [c["item_id"] for c in body["candidates"]]
    assert len(ids) == len(set(ids)) == 20
    assert not set(ids) & set(history_of(http, "1"))
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert all(c["title"] for c in body["candidates"])


def test_explicit_history_gives_what_the_stored_history_gives(http: httpx.Client, trained: dict) -> None:
    by_user = http.post("/v1/candidates", json={"user_id": "42", "k": 10}).json()
    by_history = http.post("/v1/candidates", json={"history": history_of(http, "42"), "k": 10}).json()
    assert [c["item_id"] for c in by_history["candidates"]] == [c["item_id"] for c in by_user["candidates"]]
    assert by_user["history"] == []


def test_history_tail_comes_with_titles_when_asked(http: httpx.Client, trained: dict) -> None:
    body = http.post("/v1/candidates", json={"user_id": "42", "k": 5, "include_history": 3}).json()
    assert [h["item_id"] for h in body["history"]] == history_of(http, "42")[-3:]
    assert all(h["title"] for h in body["history"])
    assert http.post("/v1/candidates", json={"user_id": "42", "include_history": 201}).status_code == 422


def test_cold_users_get_popular_items_flagged(http: httpx.Client, trained: dict) -> None:
    new_user, new_item = f"cold-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    http.post("/v1/users", json={"users": [{"external_id": new_user}]}).raise_for_status()
    http.post("/v1/items", json={"items": [{"external_id": new_item, "title": "After training"}]}).raise_for_status()
    popular = Checkpoint.load(trained["artifact"]).popularity
    expected_top = Checkpoint.load(trained["artifact"]).item_ids[int(popular[1:].argmax())]

    cold = http.post("/v1/candidates", json={"user_id": new_user, "k": 5}).json()
    assert cold["fallback"] is True and cold["candidates"][0]["item_id"] == expected_top
    # An item the model has never seen is no error: alone it tells nothing, with others it is skipped.
    only_new = http.post("/v1/candidates", json={"history": [new_item], "k": 5}).json()
    assert only_new["fallback"] is True
    mixed = http.post("/v1/candidates", json={"history": ["1", "50", new_item], "k": 5})
    assert mixed.status_code == 200 and mixed.json()["fallback"] is False


@pytest.mark.parametrize(
    "body,status,param,words",
    [
        ({"user_id": "1", "k": 0}, 422, "k", "greater than or equal to 1"),
        ({"user_id": "1", "k": 1_000_000}, 422, "k", "above the catalogue"),
        ({"history": ["1", "no-such-item"], "k": 5}, 404, "history", "no-such-item"),
        ({"user_id": "no-such-user", "k": 5}, 404, "user_id", "no-such-user"),
        ({"user_id": "1", "history": ["1"], "k": 5}, 422, "body", "exactly one of"),
        ({"k": 5}, 422, "body", "exactly one of"),
    ],
)
def test_bad_candidate_requests(
    http: httpx.Client, trained: dict, body: dict, status: int, param: str, words: str
) -> None:
    r = http.post("/v1/candidates", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param and words in r.json()["error"]["message"]


def _batch_histogram(metrics_url: str) -> tuple[float, float, float]:
    """(requests, forward passes, passes that scored one request alone) from the batch-size histogram."""
    total = passes = single = 0.0
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        if family.name != "ray_tandem_candidates_batch_size":
            continue
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                passes += sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 1.0:
                single += sample.value
    return total, passes, single


def test_concurrent_requests_are_batched(serve_app: str, metrics_url: str, trained: dict) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=serve_app, timeout=60, headers=AUTH) as client:
            rs = await asyncio.gather(
                *(client.post("/v1/candidates", json={"user_id": str(u), "k": 10}) for u in range(1, 65))
            )
            return [r.status_code for r in rs]

    before = _batch_histogram(metrics_url)
    assert set(asyncio.run(burst())) == {200}
    deadline = time.monotonic() + 60
    while True:
        requests, passes, single = (a - b for a, b in zip(_batch_histogram(metrics_url), before, strict=True))
        # Ray exports on an interval; wait until most of the burst has been reported.
        if requests >= 48 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert requests >= 48, (requests, passes)
    assert passes - single >= 1, "no forward pass ever scored more than one request"
    assert passes < requests, f"{requests} requests took {passes} forward passes"


def test_new_version_is_swapped_in_without_failing_requests(
    http: httpx.Client, serve_app: str, settings: Settings, pg_url: str, trained: dict
) -> None:
    statuses: Counter[int] = Counter()
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=serve_app, timeout=60, headers=AUTH) as client:
            while not stop.is_set():
                r = client.post("/v1/candidates", json={"user_id": "7", "k": 10})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        second = run_training(
            settings,
            TrainRequest(QUICK.options.model_copy(update={"max_epochs": 1})),
            pg_url,
        )
        wait_for_version(http, second["version"])
        time.sleep(1)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert set(statuses) == {200}, statuses
    assert {trained["version"], second["version"]} <= versions


def _artifact(pg_url: str, version: str) -> str:
    async def read() -> str:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchval("SELECT artifact_path FROM model_versions WHERE version = $1", version)
        finally:
            await conn.close()

    return asyncio.run(read())


def test_histories_from_memory_give_what_the_whole_stored_history_gives(
    http: httpx.Client, pg_url: str, trained: dict
) -> None:
    # User 414 rated 2,698 films, far more than the model reads (max_len 50); the others a few dozen to hundreds.
    users = ["414", "1", "42", "599", "7"]
    first = {u: http.post("/v1/candidates", json={"user_id": u, "k": 20}).json() for u in users}
    again = {u: http.post("/v1/candidates", json={"user_id": u, "k": 20}).json() for u in users}  # from memory
    recommender = Recommender(Checkpoint.load(_artifact(pg_url, first["1"]["model_version"])))
    expected = recommender.rank([history_of(http, u) for u in users], [20] * len(users))
    for user, want in zip(users, expected, strict=True):
        for got in (first[user], again[user]):
            assert [c["item_id"] for c in got["candidates"]] == want.item_ids, user
            assert [c["score"] for c in got["candidates"]] == pytest.approx(want.scores, abs=1e-4)


def _eventually(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "the change never reached the candidate deployment"
        time.sleep(0.2)
    return result


def test_new_interactions_and_titles_reach_the_histories_in_memory(http: httpx.Client, trained: dict) -> None:
    user, film = f"cache-{uuid.uuid4().hex[:8]}", f"film-{uuid.uuid4().hex[:8]}"
    http.post("/v1/users", json={"users": [{"external_id": user}]}).raise_for_status()
    http.post("/v1/items", json={"items": [{"external_id": film, "title": "Before"}]}).raise_for_status()
    events = [{"user_id": user, "item_id": item, "rating": 4.0, "timestamp": f"2020-01-0{day}T00:00:00Z"}
              for day, item in enumerate(["1", "50", film], start=1)]
    http.post("/v1/interactions", json={"interactions": events}).raise_for_status()

    def candidates() -> dict:
        return http.post("/v1/candidates", json={"user_id": user, "k": 20, "include_history": 5}).json()

    first = candidates()
    assert [h["item_id"] for h in first["history"]] == ["1", "50", film]
    assert candidates() == first  # read once, then served from memory
    top = first["candidates"][0]["item_id"]
    later = {"user_id": user, "item_id": top, "rating": 5.0, "timestamp": "2020-01-09T00:00:00Z"}
    http.post("/v1/interactions", json={"interactions": [later]}).raise_for_status()
    body = _eventually(lambda: (b := candidates())["history"][-1]["item_id"] == top and b)
    assert top not in [c["item_id"] for c in body["candidates"]]

    http.post("/v1/items", json={"items": [{"external_id": film, "title": "After"}]}).raise_for_status()
    _eventually(lambda: candidates()["history"][-2]["title"] == "After")
