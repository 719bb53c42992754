"""The LLM's two book prompts: choose n books from the candidates (JSON constrained to their ids), and
judge a recommendation against a fixed 0-5 rubric (the seed project's evaluation), in a separate call.

The judge answers with one digit, and the score is read from the next-token probabilities of the six digits
(as G-Eval does): the most likely digit is the rubric score, and the probability-weighted mean a finer one
that still separates recommendations when a small model would print the same digit for all of them.

Both are chat prompts rendered with the model's own template. Candidates are listed in retrieval order and
cut to a token budget: the prompt keeps as many whole candidates as fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from models.books.catalogue import CatalogueBook
from models.books.questions import BookAnswers

CHOOSE_SYSTEM = ("당신은 독자의 감정과 상황에 맞는 책을 골라 주는 도서 추천 전문가입니다. "
                 "반드시 주어진 후보 도서 목록에 있는 책만, 그 id로 고르세요.")
JUDGE_SYSTEM = "당신은 도서 추천의 품질을 채점하는 평가자입니다. 주어진 기준에 따라 0에서 5 사이의 정수로 채점하세요."
RUBRIC = """채점 기준:
5: 모든 책이 독자의 기분, 원하는 효과, 독서 상황, 원하는 깊이에 잘 맞고 이유가 구체적이다.
4: 대부분 잘 맞고 작은 불일치만 있다.
3: 절반 정도가 맞거나 이유가 일반적이다.
2: 일부만 관련이 있다.
1: 거의 관련이 없다.
0: 전혀 관련이 없거나 추천이 비어 있다."""
MIN_CANDIDATES = 1


def answers_text(answers: BookAnswers) -> str:
    return "\n".join(f"- {q.text} {a}" for q, a in answers.items())


def candidate_line(book: CatalogueBook, intro_chars: int) -> str:
    intro = (book.introduction or "").replace("\n", " ")
    intro = intro[:intro_chars] + ("…" if len(intro) > intro_chars else "")
    genres = ", ".join(book.genres()[:2])
    return f"[{book.id}] {book.title} — {book.author or '저자 미상'} | {genres} | {intro}"


def choice_schema(ids: list[str], n: int, reason_chars: int) -> dict:
    """JSON the LLM must produce: exactly n picks, each a candidate id and a reason. vLLM's structured output
    makes any other id impossible; it cannot forbid repeats, which `parse_choice` drops."""
    pick = {"type": "object",
            "properties": {"book_id": {"type": "string", "enum": ids},
                           "reason": {"type": "string", "minLength": 1, "maxLength": reason_chars}},
            "required": ["book_id", "reason"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"recommendations": {"type": "array", "items": pick, "minItems": n, "maxItems": n}},
            "required": ["recommendations"], "additionalProperties": False}


SCORES = tuple(str(s) for s in range(6))


@dataclass(frozen=True)
class Pick:
    book_id: str
    reason: str


def parse_choice(text: str, ids: list[str]) -> list[Pick]:
    """The distinct candidate picks in the LLM's order. Raises ValueError on output that is not the schema's
    JSON (e.g. cut off by the token limit)."""
    try:
        picks = json.loads(text)["recommendations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"the LLM's choice is not the expected JSON: {text[:200]!r}") from exc
    allowed, seen, result = set(ids), set(), []
    for p in picks:
        book_id = p.get("book_id") if isinstance(p, dict) else None
        if book_id in allowed and book_id not in seen:
            seen.add(book_id)
            result.append(Pick(book_id, str(p.get("reason", "")).strip()))
    return result


def score_ids(tokenizer) -> list[int]:
    """The token id of each digit 0-5; the judge cannot be read with a tokenizer that splits them."""
    ids = [tokenizer.encode(s, add_special_tokens=False) for s in SCORES]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"the tokenizer does not encode each of {SCORES} as one token: {ids}")
    return [i[0] for i in ids]


def judged_scores(logprobs: list[float]) -> tuple[int, float]:
    """The rubric score (the most likely digit) and the probability-weighted mean over the six digits."""
    top = max(range(len(logprobs)), key=logprobs.__getitem__)
    weights = [math.exp(lp - logprobs[top]) for lp in logprobs]
    return top, sum(s * w for s, w in enumerate(weights)) / sum(weights)


class BookPrompter:
    def __init__(self, tokenizer, max_prompt_tokens: int, intro_chars: int):
        self.tokenizer, self.max_prompt_tokens, self.intro_chars = tokenizer, max_prompt_tokens, intro_chars

    def _render(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def choose(self, answers: BookAnswers, reader: str, candidates: list[CatalogueBook], n: int,
               ) -> tuple[str, list[CatalogueBook]]:
        """The prompt and the candidates it lists: as many as fit the budget, at least n."""
        def user(shown: list[CatalogueBook]) -> str:
            lines = [f"독자의 답변:\n{answers_text(answers)}"]
            if reader:
                lines.append(f"독자 정보:\n{reader}")
            lines.append("후보 도서:\n" + "\n".join(candidate_line(b, self.intro_chars) for b in shown))
            lines.append(f"후보 중에서 이 독자에게 가장 잘 맞는 책 {n}권을 골라, 각 책이 왜 맞는지와 "
                         "어떻게 도움이 될지를 한두 문장으로 설명하세요. JSON으로 답하세요.")
            return "\n\n".join(lines)

        shown = list(candidates)
        prompt = self._render(CHOOSE_SYSTEM, user(shown))
        while len(shown) > max(n, MIN_CANDIDATES) and self._tokens(prompt) > self.max_prompt_tokens:
            shown.pop()
            prompt = self._render(CHOOSE_SYSTEM, user(shown))
        return prompt, shown

    def judge(self, answers: BookAnswers, reader: str, chosen: list[tuple[CatalogueBook, str]]) -> str:
        books = "\n".join(f"- {candidate_line(b, self.intro_chars)}\n  추천 이유: {reason}" for b, reason in chosen)
        user = "\n\n".join(p for p in (f"독자의 답변:\n{answers_text(answers)}",
                                       f"독자 정보:\n{reader}" if reader else "",
                                       f"추천된 책:\n{books or '(없음)'}", RUBRIC,
                                       "기준에 따른 점수(0~5)를 숫자 하나로만 답하세요.") if p)
        return self._render(JUDGE_SYSTEM, user)
