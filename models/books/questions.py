"""The five questions of the book chatbot, their example answers, and the search terms each example adds.

Answers are free text; an answer that names an example (in Korean or by its English key) also adds that
example's terms to the catalogue query, so "지침" searches for rest and comfort, not for the word alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    terms: str


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    options: tuple[Option, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("mood", "지금 기분은 어떠세요?", (
        Option("happy", "행복함", "행복 기쁨 유쾌"),
        Option("tired", "지침", "휴식 위로 쉼 회복"),
        Option("anxious", "불안함", "불안 마음 안정 위로"),
        Option("depressed", "우울함", "우울 위로 희망 치유"),
        Option("excited", "설렘", "설렘 사랑 시작 모험"),
        Option("confused", "혼란스러움", "인생 방향 고민 생각"),
        Option("lonely", "외로움", "외로움 관계 우정 공감"),
    )),
    Question("effect", "책을 읽고 어떤 감정적 효과를 얻고 싶으세요?", (
        Option("escape", "현실 도피", "판타지 모험 상상 추리 세계"),
        Option("empathy", "공감", "공감 이야기 일상 관계 마음"),
        Option("comfort", "위로", "위로 치유 따뜻한 마음 에세이"),
        Option("inspiration", "영감", "영감 도전 성장 꿈 성공"),
        Option("perspective", "새로운 관점", "관점 생각 철학 인문 세상"),
    )),
    Question("job", "어떤 일을 하세요?", (
        Option("student", "학생", "공부 청춘 진로 학교"),
        Option("office_worker", "직장인", "직장 회사 일 커리어"),
        Option("developer", "개발자", "기술 개발 과학 미래"),
        Option("teacher", "교사", "교육 아이 학교 배움"),
        Option("homemaker", "주부", "가족 육아 살림 부모"),
        Option("freelancer", "프리랜서", "자기계발 시간 일 창작"),
        Option("retired", "은퇴", "인생 건강 여유 역사"),
    )),
    Question("situation", "주로 언제 책을 읽으세요?", (
        Option("before_sleep", "잠들기 전", "잔잔한 따뜻한 마음 짧은"),
        Option("commute", "출퇴근길", "짧은 가벼운 에세이"),
        Option("weekend", "여유로운 주말", "장편 몰입 소설 이야기"),
        Option("stress_relief", "스트레스 해소", "유쾌 웃음 힐링 휴식"),
    )),
    Question("depth", "어느 정도 깊이의 책을 원하세요?", (
        Option("light", "가볍게", "가벼운 쉬운 짧은 에세이"),
        Option("deep", "깊이 있게", "성찰 철학 인문 사유"),
        Option("immersive", "몰입해서", "장편 소설 서사 스릴러"),
    )),
)
BY_KEY = {q.key: q for q in QUESTIONS}


class BookAnswers(BaseModel):
    """Answers to the five questions, as free text (the examples of `GET /v1/books/questions` or anything)."""

    mood: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["지침"])
    effect: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["위로"])
    job: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["직장인"])
    situation: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["잠들기 전"])
    depth: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["가볍게"])

    def items(self) -> list[tuple[Question, str]]:
        return [(q, getattr(self, q.key).strip()) for q in QUESTIONS]


def option_for(question: Question, answer: str) -> Option | None:
    """The example the answer names: its key, or its label inside the answer ("요즘 좀 지침" → 지침)."""
    lowered = answer.lower()
    for option in question.options:
        if lowered == option.key or option.label in answer:
            return option
    return None


def answer_terms(answers: BookAnswers) -> list[str]:
    """Each answer (an English key as its Korean label), followed by its example's search terms when it names one."""
    parts = []
    for question, answer in answers.items():
        option = option_for(question, answer)
        if option is None:
            parts.append(answer)
        else:
            parts += [option.label if answer.lower() == option.key else answer, option.terms]
    return parts
