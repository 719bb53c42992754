"""Korean text to search terms with kiwipiepy: content morphemes only, so particles and endings do not match."""

from __future__ import annotations

from functools import lru_cache

# Nouns, verb and adjective stems, roots, foreign words, numbers and Chinese characters carry the meaning.
CONTENT_TAGS = ("NN", "NR", "NP", "VV", "VA", "XR", "SL", "SN", "SH")


@lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def terms(text: str) -> list[str]:
    return [t.form.lower() for t in _kiwi().tokenize(text) if t.tag.startswith(CONTENT_TAGS)]


def terms_many(texts: list[str]) -> list[list[str]]:
    return [[t.form.lower() for t in tokens if t.tag.startswith(CONTENT_TAGS)] for tokens in _kiwi().tokenize(texts)]


# Words that make a question a question, not what it is about.
QUESTION_NOUNS = frozenset({"것", "수", "때", "얼마", "무엇", "뭐", "어디", "누구", "언제", "등", "중", "곳", "무슨",
                            "어느", "몇", "경우", "이것", "그것"})
# Verbs that carry grammar rather than meaning (하다, 되다, 있다, ...).
LIGHT_PREDICATES = frozenset({"하", "되", "있", "없", "같", "이", "않", "보", "주", "받", "알"})


def analyzer_keywords(text: str) -> list[str]:
    """Keywords by morphological analysis, in order and without repeats: nouns (proper, common, foreign words,
    numbers) and the dictionary form of content verbs and adjectives (좋 → 좋다)."""
    keywords: list[str] = []
    for token in _kiwi().tokenize(text):
        if token.tag in ("NNG", "NNP", "SL", "SH") and token.form not in QUESTION_NOUNS:
            word = token.form.lower()
        elif token.tag in ("VV", "VA") and token.form not in LIGHT_PREDICATES:
            word = token.form + "다"
        else:
            continue
        if word not in keywords:
            keywords.append(word)
    return keywords
