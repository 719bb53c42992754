"""A reader's history and preferences, what of them matters to one request, and how they read in a prompt."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.books.questions import BookAnswers, answer_terms
from models.korean import terms, terms_many

DISLIKED_BELOW = 3.0  # ratings are 0-5; a book rated lower says what the reader does not want more of


@dataclass(frozen=True)
class ReadBook:
    title: str
    author: str | None = None
    rating: float | None = None
    review: str | None = None
    genres: tuple[str, ...] = ()

    def text(self) -> str:
        return " ".join([self.title, *self.genres, self.review or ""])


@dataclass(frozen=True)
class Reader:
    job: str | None = None
    history: tuple[ReadBook, ...] = ()
    genres: dict[str, float] = field(default_factory=dict)
    reading_style: str | None = None
    keywords: tuple[str, ...] = ()
    avoid_topics: tuple[str, ...] = ()

    def top_genres(self, k: int = 3, min_weight: float = 0.5) -> list[str]:
        return [g for g, w in sorted(self.genres.items(), key=lambda gw: -gw[1]) if w >= min_weight][:k]


def relevant_history(reader: Reader, answers: BookAnswers, k: int = 3) -> list[ReadBook]:
    """The books read that share the most content terms with the answers (their examples' terms included);
    the rating breaks ties. Books the reader disliked are never used as a positive signal."""
    liked = [b for b in reader.history if b.rating is None or b.rating >= DISLIKED_BELOW]
    if not liked:
        return []
    wanted = set(terms(" ".join(answer_terms(answers))))
    overlaps = [len(wanted & set(t)) for t in terms_many([b.text() for b in liked])]
    ranked = sorted(zip(overlaps, liked, strict=True), key=lambda ob: (-ob[0], -(ob[1].rating or 0)))
    return [b for _, b in ranked[:k]]


def enhanced_query(answers: BookAnswers, reader: Reader, history: list[ReadBook]) -> str:
    """The `rag` method's catalogue query: the answers with their examples' terms, the genres and reviews of
    the relevant books read, the preferred genres, keywords and reading style."""
    parts = answer_terms(answers)
    parts += [" ".join([*b.genres, b.review or ""]) for b in history]
    parts += reader.top_genres() + list(reader.keywords)
    if reader.reading_style:
        parts.append(reader.reading_style)
    return "\n".join(p for p in parts if p.strip())


def raw_query(answers: BookAnswers) -> str:
    """The `prompt` method's catalogue query: the answers as given."""
    return "\n".join(answer for _, answer in answers.items())


def _book_line(b: ReadBook) -> str:
    rating = f", 평점 {b.rating:g}/5" if b.rating is not None else ""
    review = f": {b.review}" if b.review else ""
    return f"- {b.title}{f' ({b.author})' if b.author else ''}{rating}{review}"


def describe(reader: Reader, history: list[ReadBook] | tuple[ReadBook, ...]) -> str:
    """The reader as prompt text: job, preferences, topics to avoid and the given books read."""
    lines = []
    if reader.job:
        lines.append(f"직업: {reader.job}")
    if reader.genres:
        lines.append("선호 장르: " + ", ".join(f"{g}({w:g})" for g, w in sorted(reader.genres.items(),
                                                                             key=lambda gw: -gw[1])))
    if reader.reading_style:
        lines.append(f"읽기 스타일: {reader.reading_style}")
    if reader.keywords:
        lines.append("관심 키워드: " + ", ".join(reader.keywords))
    if reader.avoid_topics:
        lines.append("피하고 싶은 주제: " + ", ".join(reader.avoid_topics))
    if history:
        lines.append("읽은 책:")
        lines += [_book_line(b) for b in history]
    return "\n".join(lines)
