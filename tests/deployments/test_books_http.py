"""The book recommender over real HTTP: the Aladin catalogue in PostgreSQL, the fixture readers' histories
and preferences through the API, catalogue search that leaves out books read and avoided topics, the LLM
(vLLM, JSON constrained to the candidates' ids) choosing with reasons, the judge, and degradation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from db.importers import import_books
from db.migrate import migrate
from models.books.catalogue import CatalogueBook, avoided_topic
from tandem.settings import Settings
from tests.conftest import AUTH, deploy_ingress

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "book_readers.json"
ANSWERS = {"mood": "지침", "effect": "위로", "job": "직장인", "situation": "잠들기 전", "depth": "가볍게"}


def load_readers(http: httpx.Client, readers: list[dict]) -> None:
    """The fixture readers through the public API: users, reading histories, preferences."""
    assert http.post("/v1/users", json={"users": [r["user"] for r in readers]}).status_code == 200
    for r in readers:
        user = r["user"]["external_id"]
        written = http.post("/v1/reading-history", json={"user_id": user, "entries": r["history"]})
        assert written.status_code == 200, written.text
        prefs = http.put("/v1/reading-preferences", json={"user_id": user, **r["preferences"]})
        assert prefs.status_code == 200, prefs.text


@pytest.fixture(scope="module")
def readers(http: httpx.Client, settings: Settings, pg_url: str) -> list[dict]:
    async def catalogue() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn)
            await import_books(conn, settings.data_dir / "books" / "aladin_raw_data.csv")
        finally:
            await conn.close()

    asyncio.run(catalogue())
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))["readers"]
    load_readers(http, fixture)
    # The retriever follows the catalogue on NOTIFY books.
    deadline = time.monotonic() + 60
    while (http.get("/readyz").json()["retrieval"] or {}).get("books", 0) < 807:
        assert time.monotonic() < deadline, "the retriever never loaded the catalogue"
        time.sleep(0.5)
    return fixture


def catalogue_book(http: httpx.Client, book_id: str) -> CatalogueBook:
    r = http.get(f"/v1/books/{book_id}")
    assert r.status_code == 200, f"{book_id} is not in the catalogue"
    b = r.json()
    return CatalogueBook(b["external_id"], b["title"], b["author"], tuple(b["categories"]), b["introduction"])


def test_the_five_questions_with_examples(http: httpx.Client) -> None:
    questions = http.get("/v1/books/questions").json()
    assert [q["key"] for q in questions] == ["mood", "effect", "job", "situation", "depth"]
    labels = {q["key"]: [e["label"] for e in q["examples"]] for q in questions}
    assert {"행복함", "지침", "불안함", "우울함", "설렘", "혼란스러움"} <= set(labels["mood"])
    assert {"현실 도피", "공감", "위로", "영감", "새로운 관점"} == set(labels["effect"])
    assert {"잠들기 전", "출퇴근길", "여유로운 주말", "스트레스 해소"} == set(labels["situation"])
    assert {"가볍게", "깊이 있게", "몰입해서"} == set(labels["depth"])


def test_reading_history_links_catalogue_books_and_keeps_others(http: httpx.Client, readers: list[dict]) -> None:
    history = http.get("/v1/reading-history", params={"user_id": "reader-mystery-student"}).json()
    by_title = {e["title"]: e for e in history}
    assert by_title["눈에 갇힌 외딴 산장에서"]["book_id"] == "9791192483191"
    assert by_title["눈에 갇힌 외딴 산장에서"]["in_catalogue"] is True
    assert by_title["셜록 홈즈 전집 1"]["in_catalogue"] is False and by_title["셜록 홈즈 전집 1"]["book_id"] is None
    assert [e["title"] for e in history][0] == "달러구트 꿈 백화점 2"  # most recent first
    # A title alone is matched to the catalogue, so the book is not recommended again.
    r = http.post("/v1/reading-history", json={"user_id": "reader-mystery-student",
                                               "entries": [{"title": "마력의 태동", "rating": 5}]})
    assert r.json() == {"received": 1, "written": 1}
    again = {e["title"]: e for e in http.get("/v1/reading-history",
                                             params={"user_id": "reader-mystery-student"}).json()}
    assert again["마력의 태동"]["book_id"] == "9788972759546" and again["마력의 태동"]["rating"] == 5
    prefs = http.get("/v1/reading-preferences", params={"user_id": "reader-mystery-student"}).json()
    assert prefs["genres"]["추리/미스터리소설"] == 0.9 and prefs["avoid_topics"] == ["정치", "주식"]


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/reading-history", {"user_id": "reader-parent", "entries": [{"book_id": "nope-1", "title": "x"}]}, 404,
     "nope-1"),
    ("/v1/reading-history", {"user_id": "nobody-here", "entries": [{"title": "x"}]}, 404, "nobody-here"),
    ("/v1/reading-history", {"user_id": "reader-parent", "entries": [{"title": "x", "rating": 7}]}, 422, "rating"),
    ("/v1/reading-preferences", {"user_id": "reader-parent", "genres": {"시": 2}}, 422, "[0, 1]"),
    ("/v1/books/recommendations", {"answers": ANSWERS, "n": 0}, 422, "n"),
    ("/v1/books/recommendations", {"answers": ANSWERS, "n": 11}, 422, "n"),
    ("/v1/books/recommendations", {"answers": {**ANSWERS, "mood": " "}}, 422, "mood"),
    ("/v1/books/recommendations", {"answers": {k: v for k, v in ANSWERS.items() if k != "depth"}}, 422, "depth"),
    ("/v1/books/recommendations", {"answers": ANSWERS, "method": "magic"}, 422, "method"),
    ("/v1/books/recommendations", {"answers": ANSWERS, "user_id": "nobody-here"}, 404, "nobody-here"),
])
def test_bad_book_requests_say_what_is_wrong(http: httpx.Client, readers: list[dict], path: str, body: dict,
                                             status: int, words: str) -> None:
    r = http.request("PUT" if path.endswith("preferences") else "POST", path, json=body)
    assert r.status_code == status and words in r.text, r.text


def test_a_rejected_history_batch_writes_nothing(http: httpx.Client, readers: list[dict]) -> None:
    before = http.get("/v1/reading-history", params={"user_id": "reader-parent"}).json()
    r = http.post("/v1/reading-history", json={"user_id": "reader-parent", "entries": [
        {"title": "하얼빈", "rating": 4}, {"book_id": "nope-3", "title": "없는 책"}]})
    assert r.status_code == 404 and "nope-3" in r.text
    assert http.get("/v1/reading-history", params={"user_id": "reader-parent"}).json() == before


def test_search_leaves_out_books_read_and_avoided_topics(http: httpx.Client, readers: list[dict]) -> None:
    query = {"query": "히가시노 게이고 추리 미스터리 반전", "top_k": 30, "mode": "sparse"}
    anyone = [b["book_id"] for b in http.post("/v1/books/search", json=query).json()["books"]]
    assert "9791192483191" in anyone  # 눈에 갇힌 외딴 산장에서, which the student has read
    student = http.post("/v1/books/search", json={**query, "user_id": "reader-mystery-student"}).json()
    ids = [b["book_id"] for b in student["books"]]
    assert ids and "9791192483191" not in ids and "9788972759546" not in ids
    expected = [i for i in anyone if i not in {"9791192483191", "9788972759546"}
                and avoided_topic(catalogue_book(http, i), ["정치", "주식"]) is None]
    assert ids[: len(expected)] == expected
    politics = http.post("/v1/books/search", json={"query": "정치 대통령 선거", "top_k": 20, "mode": "sparse",
                                                   "user_id": "reader-developer"}).json()["books"]
    assert all(avoided_topic(catalogue_book(http, b["book_id"]), ["정치", "연애"]) is None for b in politics)


def test_a_new_catalogue_book_is_searchable_without_a_restart(http: httpx.Client, readers: list[dict]) -> None:
    isbn = f"test-{uuid.uuid4().hex[:8]}"
    book = {"external_id": isbn, "title": "별빛정원사의 밤", "author": "테스트 (지은이)",
            "introduction": "별빛정원사가 잠들지 못하는 사람들에게 위로를 건네는 이야기.",
            "categories": ["국내도서 > 소설/시/희곡 > 한국소설"]}
    assert http.post("/v1/books", json={"books": [book]}).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        found = http.post("/v1/books/search", json={"query": "별빛정원사", "mode": "sparse"}).json()["books"]
        if found and found[0]["book_id"] == isbn:
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


@pytest.mark.parametrize("method", ["rag", "prompt"])
def test_recommendations_are_real_unread_books_with_reasons(http: httpx.Client, settings: Settings,
                                                            readers: list[dict], method: str) -> None:
    reader = next(r for r in readers if r["user"]["external_id"] == "reader-office-essay")
    r = http.post("/v1/books/recommendations", json={"user_id": "reader-office-essay", "answers": ANSWERS,
                                                     "method": method, "n": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == method and len(body["books"]) == 3
    assert body["model"] == settings.llm_name  # the LLM chose; a failed or late choice leaves it null
    assert body["usage"]["prompt_tokens"] > 100 and body["usage"]["completion_tokens"] > 0
    assert body["books"][0]["chosen_by"] == "llm" and body["books"][0]["reason"]
    read = {e["book_id"] for e in reader["history"] if "book_id" in e}
    ids = [b["book_id"] for b in body["books"]]
    assert len(set(ids)) == 3 and not set(ids) & read
    for b in body["books"]:
        book = catalogue_book(http, b["book_id"])
        assert b["title"] == book.title
        assert avoided_topic(book, reader["preferences"]["avoid_topics"]) is None
    if method == "rag":
        # The enhanced query carries the answers' terms and the reader's preferences.
        assert "휴식 위로" in body["query"] and "에세이" in body["query"] and "일상" in body["query"]
    else:
        assert body["query"].split("\n") == list(ANSWERS.values())


def test_without_a_user_the_answers_alone_drive_it(http: httpx.Client, readers: list[dict]) -> None:
    r = http.post("/v1/books/recommendations", json={"answers": {**ANSWERS, "effect": "escape"}, "n": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["books"]) == 2 and "현실 도피" in r.json()["query"]


def test_the_judge_scores_a_recommendation_on_the_rubric(http: httpx.Client, readers: list[dict]) -> None:
    picks = [{"book_id": "9791191583793", "reason": "일상을 다정하게 바라보는 에세이라 지친 날 위로가 됩니다."}]
    r = http.post("/v1/books/judgements", json={"user_id": "reader-office-essay", "answers": ANSWERS,
                                                "books": picks})
    assert r.status_code == 200, r.text
    judged = r.json()
    assert judged["score"] in range(6) and 0 <= judged["expected_score"] <= 5
    assert judged["usage"]["prompt_tokens"] > 100 and judged["usage"]["completion_tokens"] == 0
    missing = http.post("/v1/books/judgements", json={"answers": ANSWERS, "books": [{"book_id": "nope-2",
                                                                                      "reason": "x"}]})
    assert missing.status_code == 404 and "nope-2" in missing.text


def test_an_llm_out_of_time_degrades_to_the_search_order(serve_app: str, settings: Settings,
                                                         readers: list[dict]) -> None:
    from ray import serve

    url = deploy_ingress(serve_app, "books-hurried", settings.model_copy(update={"books_timeout_s": 0.001}))
    try:
        with httpx.Client(base_url=url, timeout=120, headers=AUTH) as client:
            body = client.post("/v1/books/recommendations", json={"user_id": "reader-retired", "answers": ANSWERS,
                                                                   "n": 3}).json()
    finally:
        serve.delete("books-hurried")
    assert [b["chosen_by"] for b in body["books"]] == ["search"] * 3 and body["model"] is None
    assert "budget" in body["fallback"] and body["usage"] is None
