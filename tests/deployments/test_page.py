"""The page at `/`, in a real browser (Playwright driving Debian's chromium) against the live stack: one test per tab
doing its main flow, asserting on what the page shows against what the API answers.

With TANDEM_PAGE_SCREENSHOTS=<folder> each tab is also saved as a PNG there (docs/img/ holds the README's).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from db.importers import import_books, import_korquad
from db.migrate import migrate
from tandem.settings import Settings
from tests.conftest import ADMIN_KEY, wait_for_run

SHOTS = os.environ.get("TANDEM_PAGE_SCREENSHOTS")
LLM_WAIT_MS = 240_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it"
    with sync_playwright() as p:
        # --no-sandbox: chromium's sandbox needs user namespaces that a container run as root does not have.
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, serve_app: str) -> Iterator[Page]:
    context = browser.new_context(base_url=serve_app, viewport={"width": 1280, "height": 900}, locale="ko-KR")
    opened = context.new_page()
    opened.goto("/")
    # The service wants a key: the page asks for one (its first calls were refused) and sends it from then on.
    expect(opened.locator("#key-form")).to_be_visible()
    opened.locator("#api-key").fill(ADMIN_KEY)
    opened.get_by_role("button", name="Use", exact=True).click()
    expect(opened.locator("#key-form")).to_be_hidden()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def collections(settings: Settings, pg_url: str, http: httpx.Client) -> None:
    """KorQuAD and the book catalogue in the session database (upserts: a no-op when another module loaded them)."""
    async def load() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn)
            await import_korquad(conn, settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json")
            await import_books(conn, settings.data_dir / "books" / "aladin_raw_data.csv")
        finally:
            await conn.close()

    # In a thread: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, load()).result()
    # The retriever follows both tables on NOTIFY.
    deadline = time.monotonic() + 120
    while not ((found := http.get("/readyz").json()["retrieval"] or {}).get("passages", 0) >= 964
               and found.get("books", 0) >= 807):
        assert time.monotonic() < deadline, f"the retriever never loaded KorQuAD and the catalogue: {found}"
        time.sleep(0.5)


def test_recommendations_show_lrurec_and_the_llm_side_by_side(page: Page, trained: dict) -> None:
    page.locator("#rec-user").fill("1")
    page.locator("#rec-k").fill("5")
    # What the page itself was answered: another request could be ordered otherwise where the LLM's scores of two
    # candidates are a bf16 tie.
    with page.expect_response(lambda r: r.url.endswith("/v1/recommendations"), timeout=LLM_WAIT_MS) as answer:
        page.get_by_role("button", name="Recommend", exact=True).click()
    served = answer.value.json()
    expect(page.locator("#rec-result")).to_be_visible(timeout=LLM_WAIT_MS)
    expect(page.locator("#rec-lrurec tbody tr")).to_have_count(20)
    expect(page.locator("#rec-llm tbody tr")).to_have_count(5)
    # LRURec's column is LRURec's order; the served column is the response's order, LRURec's rank beside it.
    by_rank = sorted(served["items"], key=lambda i: i["lrurec_rank"])
    expect(page.locator("#rec-lrurec tbody tr").first.locator("td").nth(1)).to_have_text(by_rank[0]["title"])
    first = served["items"][0]
    expect(page.locator("#rec-llm tbody tr").first.locator("td").nth(1)).to_have_text(first["title"])
    expect(page.locator("#rec-llm tbody tr").first.locator("td").nth(3)).to_have_text(str(first["lrurec_rank"] + 1))
    meta = page.locator("#rec-meta")
    expect(meta).to_contain_text(f"ordered by {served['ordered_by']}")
    expect(meta).to_contain_text(f"lrurec {served['model_versions']['lrurec']}")
    expect(meta).to_contain_text(re.compile(r"candidates \d+ ms, ranking \d+ ms"))
    expect(page.locator("#rec-history li")).to_have_count(len(served["history"]))
    shot(page, "recommendations")


def test_a_question_is_answered_in_korean_with_its_passages(page: Page, collections: None,
                                                              http: httpx.Client) -> None:
    page.get_by_role("tab", name="Questions").click()
    question = "임진왜란은 몇 년에 일어났는가?"
    page.locator("#qa-question").fill(question)
    page.get_by_label("sparse").check()
    page.get_by_role("button", name="Ask").click()
    meta = page.locator("#qa-meta")
    expect(meta).to_contain_text("answered by", timeout=LLM_WAIT_MS)
    expect(meta).to_contain_text("retrieval: sparse")
    expected = http.post("/v1/retrieve", json={"query": question, "mode": "sparse", "top_k": 3}).json()
    titles = page.locator("#qa-passages li strong")
    expect(titles).to_have_count(3)
    expect(titles.first).to_have_text(expected["passages"][0]["title"])
    expect(page.locator("#qa-answer")).not_to_be_empty()
    shot(page, "questions")


def test_keywords_are_what_the_api_extracts(page: Page, http: httpx.Client) -> None:
    page.get_by_role("tab", name="Keywords").click()
    text = "이사화물 통관예약을 하면 뭐가 좋나요?"
    page.locator("#kw-text").fill(text)
    page.get_by_role("button", name="Extract").click()
    expected = http.post("/v1/keywords", json={"text": text}).json()
    chips = page.locator("#kw-list li")
    expect(chips).to_have_text(expected["results"][0]["keywords"])
    expect(page.locator("#kw-meta")).to_contain_text("KoBART" if expected["model"] == "kobart" else "analyser")
    shot(page, "keywords")


def test_books_are_chosen_from_the_five_answers(page: Page, collections: None, http: httpx.Client) -> None:
    page.get_by_role("tab", name="Books").click()
    questions = http.get("/v1/books/questions").json()
    inputs = page.locator("#books-questions input")
    expect(inputs).to_have_count(5)
    expect(inputs.first).to_have_value(questions[0]["examples"][0]["label"])
    inputs.nth(1).fill("마음이 따뜻해지고 싶어요")  # free text, not one of the examples
    page.locator("#books-n").fill("2")
    page.get_by_role("button", name="Recommend books").click()
    cards = page.locator("#books-list li")
    expect(cards).to_have_count(2, timeout=LLM_WAIT_MS)
    for i in range(2):
        expect(cards.nth(i).locator(".badge")).to_have_text(re.compile("^(llm|search)$"))
    expect(page.locator("#books-meta")).to_contain_text("마음이 따뜻해지고 싶어요")
    shot(page, "books")


def test_operations_show_readiness_runs_and_traffic_and_start_a_training(page: Page, trained: dict,
                                                                           http: httpx.Client) -> None:
    page.get_by_role("tab", name="Operations").click()
    ready = http.get("/readyz").json()
    rows = page.locator("#ops-pipelines tbody tr")
    expect(rows).to_have_count(len(ready["pipelines"]))
    expect(page.locator("#ops-models tbody")).to_contain_text(ready["models"]["lrurec"])

    page.locator("#train-pipeline").select_option("lrurec")
    page.locator("#train-preset").select_option("quick")
    errors = page.locator("#operations .error")
    for options, said in (("{max_epochs: 1}", "Options are not JSON"), ("[1]", "must be a JSON object"),
                          ('{"lrurec": {"max_epoch": 1}}', "max_epoch")):
        page.locator("#train-options").fill(options)
        page.get_by_role("button", name="Start").click()
        expect(errors).to_be_visible()
        expect(errors).to_contain_text(said)
    # The quick preset with the options given over it, cut to one short epoch.
    page.locator("#train-options").fill('{"lrurec": {"max_epochs": 1, "hidden": 32, "max_len": 20}}')
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#operations")).to_have_attribute("data-started", re.compile(r"^\d+$"))
    expect(errors).to_be_hidden()
    run_id = int(page.locator("#operations").get_attribute("data-started"))
    run = wait_for_run(http, run_id)
    assert run["status"] == "succeeded" and run["model_version"].endswith("-quick"), run
    assert {k: run["parameters"]["lrurec"][k] for k in ("max_epochs", "hidden", "max_len")} == {
        "max_epochs": 1, "hidden": 32, "max_len": 20}, run["parameters"]
    # The page refreshes itself every few seconds: the run shows as succeeded with its version.
    expect(page.locator("#ops-runs tbody tr").first).to_contain_text(run["model_version"], timeout=30_000)

    for user in ("1", "2", "3"):
        assert http.post("/v1/candidates", json={"user_id": user, "k": 5}).status_code == 200
    expect(page.locator("#ops-traffic tbody")).to_contain_text("candidates", timeout=30_000)
    expect(page.locator("#ops-chart polyline").first).to_be_attached()
    shot(page, "operations")
