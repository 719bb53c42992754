"""The book recommender's model code: answers to search terms, what of a reader's history matters, the
avoided-topic rule, the choice schema and its parsing, and the prompt's token budget."""

from __future__ import annotations

import json
import math

import pytest
from transformers import AutoTokenizer

from models.books.catalogue import CatalogueBook, avoided_topic
from models.books.profile import ReadBook, Reader, describe, enhanced_query, raw_query, relevant_history
from models.books.prompts import BookPrompter, choice_schema, judged_scores, parse_choice, score_ids
from models.books.questions import BookAnswers, answer_terms
from tandem.settings import Settings

ANSWERS = BookAnswers(mood="요즘 좀 지침", effect="comfort", job="직장인", situation="출퇴근길", depth="가볍게")
BOOK = CatalogueBook("978-1", "밤의 정원", "김작가 (지은이)", ("국내도서 > 에세이 > 한국에세이",),
                     "지친 하루 끝에 위로를 건네는 산문집. 정치 이야기는 없다.")


def test_answers_naming_an_example_add_its_terms() -> None:
    terms = answer_terms(ANSWERS)
    assert terms[:2] == ["요즘 좀 지침", "휴식 위로 쉼 회복"]  # the label found inside a free answer
    assert terms[2:4] == ["위로", "위로 치유 따뜻한 마음 에세이"]  # an English key becomes its label
    free = BookAnswers(mood="그럭저럭", effect="웃고 싶다", job="요리사", situation="아무 때나", depth="보통")
    assert answer_terms(free) == ["그럭저럭", "웃고 싶다", "요리사", "아무 때나", "보통"]
    assert raw_query(ANSWERS).split("\n") == ["요즘 좀 지침", "comfort", "직장인", "출퇴근길", "가볍게"]


def test_relevant_history_prefers_shared_terms_and_skips_disliked_books() -> None:
    reader = Reader(history=(
        ReadBook("경제 전망", rating=5, genres=("경제",)),
        ReadBook("위로의 에세이", rating=4, review="지친 날 위로가 됐다", genres=("에세이",)),
        ReadBook("따뜻한 마음 사전", rating=1, review="위로 치유 따뜻한 마음", genres=("에세이",)),
    ), genres={"에세이": 0.9, "시": 0.6, "경제": 0.2}, keywords=("일상",), reading_style="짧게")
    history = relevant_history(reader, ANSWERS, k=2)
    assert [b.title for b in history] == ["위로의 에세이", "경제 전망"]
    query = enhanced_query(ANSWERS, reader, history)
    assert "지친 날 위로가 됐다" in query and "에세이\n시\n일상\n짧게" in query and "경제\n" not in query[-20:]
    text = describe(reader, history)
    assert "선호 장르: 에세이(0.9), 시(0.6), 경제(0.2)" in text and "- 위로의 에세이, 평점 4/5: 지친 날" in text


def test_an_avoided_topic_anywhere_in_the_description_keeps_a_book_out() -> None:
    assert avoided_topic(BOOK, ["정치"]) == "정치"
    assert avoided_topic(BOOK, ["에세이"]) == "에세이"  # categories count
    assert avoided_topic(BOOK, ["공포", " "]) is None


def test_choice_parsing_keeps_distinct_candidates_in_order() -> None:
    ids = ["a", "b", "c"]
    schema = choice_schema(ids, 2, 40)
    pick = schema["properties"]["recommendations"]
    assert pick["minItems"] == pick["maxItems"] == 2 and pick["items"]["properties"]["book_id"]["enum"] == ids
    text = json.dumps({"recommendations": [{"book_id": "b", "reason": "좋다"}, {"book_id": "b", "reason": "또"},
                                           {"book_id": "z", "reason": "없는 책"}, {"book_id": "a", "reason": "맞다"}]})
    assert [(p.book_id, p.reason) for p in parse_choice(text, ids)] == [("b", "좋다"), ("a", "맞다")]
    with pytest.raises(ValueError, match="not the expected JSON"):
        parse_choice('{"recommendations": [{"book_id": "a", "rea', ids)
    score, expected = judged_scores([math.log(p) for p in (0.05, 0.05, 0.1, 0.2, 0.5, 0.1)])
    assert score == 4 and expected == pytest.approx(0.1 * 2 + 0.2 * 3 + 0.5 * 4 + 0.1 * 5 + 0.05)


def test_the_prompt_keeps_whole_candidates_within_its_budget() -> None:
    tokenizer = AutoTokenizer.from_pretrained(Settings().llm_path)
    books = [CatalogueBook(f"id-{i}", f"책 {i}", "저자", BOOK.categories, BOOK.introduction) for i in range(10)]
    roomy, shown = BookPrompter(tokenizer, 100_000, 60).choose(ANSWERS, "직업: 직장인", books, 3)
    assert len(shown) == 10 and "[id-9] 책 9" in roomy and "직업: 직장인" in roomy
    six, _ = BookPrompter(tokenizer, 100_000, 60).choose(ANSWERS, "", books[:6], 3)
    budget = len(tokenizer.encode(six, add_special_tokens=False))
    tight, shown = BookPrompter(tokenizer, budget, 60).choose(ANSWERS, "", books, 3)
    assert tight == six and shown == books[:6]
    judge = BookPrompter(tokenizer, budget, 60).judge(ANSWERS, "", [(books[0], "위로가 된다")])
    assert "채점 기준" in judge and "추천 이유: 위로가 된다" in judge and judge.endswith("assistant\n")
    assert len(set(score_ids(tokenizer))) == 6
