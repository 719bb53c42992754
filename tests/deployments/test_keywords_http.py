"""Keyword extraction over real HTTP: the analyser from the first run, errors that name the field, a model
trained through `/v1/train` and served in one batched beam search, and keywords expanding BM25 queries."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from tandem.settings import Settings
from tests.conftest import wait_for_run, wait_for_version
from training.keywords import SILVER, silver_pairs, store_pairs

EXAMPLE = "이사화물 통관예약을 하면 뭐가 좋나요?"


def test_the_analyser_answers_until_a_model_is_trained(http: httpx.Client) -> None:
    if http.get("/readyz").json()["models"].get("kobart") is not None:
        pytest.skip("a keyword model is already active in this session")
    body = http.post("/v1/keywords", json={"text": EXAMPLE}).json()
    assert body["model"] == "analyzer" and body["model_version"] is None
    assert body["results"] == [{"text": EXAMPLE, "keywords": ["이사", "화물", "통관", "예약", "좋다"]}]
    many = http.post("/v1/keywords", json={"texts": ["세관 검사", "여행자 휴대품 면세 한도"]}).json()
    assert [r["keywords"] for r in many["results"]] == [["세관", "검사"], ["여행자", "휴대품", "면세", "한도"]]


@pytest.mark.parametrize("body, field", [
    ({"text": ""}, "text is empty"), ({"texts": ["세관", " "]}, "texts[1] is empty"), ({}, "exactly one"),
    ({"text": "a", "texts": ["b"]}, "exactly one"), ({"texts": ["세관"] * 65}, "texts"), ({"texts": []}, "texts"),
])
def test_bad_keyword_requests_are_422_with_the_reason(http: httpx.Client, body: dict, field: str) -> None:
    r = http.post("/v1/keywords", json=body)
    assert r.status_code == 422 and field in r.json()["error"]["message"], r.text


def test_a_text_longer_than_the_model_takes_is_422(http: httpx.Client, settings: Settings) -> None:
    long = "세관 통관 절차와 관세 환급 " * settings.keywords_max_input_tokens
    r = http.post("/v1/keywords", json={"texts": ["세관", long]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "texts[1]"
    assert "at most" in r.json()["error"]["message"]


def test_keywords_expand_bm25_queries(http: httpx.Client) -> None:
    if http.get("/readyz").json()["models"].get("kobart") is not None:
        pytest.skip("the analyser's keywords are known; a trained model's are not")
    doc_id = f"kw-{uuid.uuid4().hex[:8]}"
    text = "이사화물 통관 예약 제도는 입국 전에 세관 검사 일정을 잡아 줍니다."
    document = {"external_id": doc_id, "title": "이사화물", "passages": [text]}
    r = http.post("/v1/documents", json={"documents": [document]})
    assert r.status_code == 200

    def search(expand: bool) -> dict:
        return http.post("/v1/retrieve", json={"query": "이사화물 통관예약", "mode": "sparse", "top_k": 5,
                                               "expand_keywords": expand}).json()

    deadline = time.monotonic() + 60
    while not any(p["document_id"] == doc_id for p in search(False)["passages"]):
        assert time.monotonic() < deadline, "the new document never reached BM25"
        time.sleep(0.5)
    plain = next(p for p in search(False)["passages"] if p["document_id"] == doc_id)
    expanded = next(p for p in search(True)["passages"] if p["document_id"] == doc_id)
    # The analyser's keywords (이사, 화물, 통관, 예약) join the query, so BM25 weighs the passage's terms more.
    assert expanded["sparse_score"] > plain["sparse_score"], json.dumps([plain, expanded], ensure_ascii=False)


@pytest.fixture(scope="module")
def keyword_model(http: httpx.Client, settings: Settings, pg_url: str) -> dict:
    """Silver pairs in the session database and a keyword model trained from them through the API."""
    pairs = silver_pairs(settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json")
    asyncio.run(store_pairs(pg_url, pairs, SILVER))
    r = http.post("/v1/train", json={"pipeline": "kobart", "kobart": {"epochs": 2, "max_pairs": 600}})
    assert r.status_code == 202, r.text
    run = wait_for_run(http, r.json()["run_id"])
    assert run["status"] == "succeeded", run["error"]
    wait_for_version(http, run["model_version"], "kobart", timeout_s=120)
    return run


def test_the_trained_model_is_served_in_batches(http: httpx.Client, keyword_model: dict) -> None:
    held = keyword_model["metrics"]["held_out"]
    assert held["analyzer"]["f1"] == 1.0  # silver labels are the analyser's own output
    assert held["by_source"][SILVER]["model"]["texts"] == held["model"]["texts"]
    texts = [f"{word} 통관 절차는 어떻게 되나요?" for word in ("이사화물", "여행자", "수입", "수출", "환급", "면세")]
    body = http.post("/v1/keywords", json={"texts": texts}).json()
    assert body["model"] == "kobart" and body["model_version"] == keyword_model["model_version"]
    assert [r["text"] for r in body["results"]] == texts
    for result in body["results"]:
        assert len(result["keywords"]) == len(set(result["keywords"]))  # parsed, de-duplicated
