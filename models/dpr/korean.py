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
