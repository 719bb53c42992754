"""Catalogue books as search documents, and the rule that keeps avoided topics out."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class CatalogueBook:
    id: str  # the catalogue's external id (ISBN)
    title: str
    author: str | None
    categories: tuple[str, ...]
    introduction: str | None

    def genres(self) -> list[str]:
        """The last two levels of each category path ("소설/시/희곡 > 추리/미스터리소설"), without repeats."""
        return list(dict.fromkeys(" > ".join(c.split(" > ")[-2:]) for c in self.categories))

    @cached_property
    def description(self) -> str:
        """Title, categories and introduction, case-folded: what avoided topics are looked for in."""
        return "\n".join([self.title, *self.categories, self.introduction or ""]).casefold()

    def search_text(self) -> str:
        """What BM25 and the dense encoder index: title, author, genres, introduction."""
        return "\n".join(p for p in (self.title, self.author, " / ".join(self.genres()), self.introduction) if p)


def avoided_topic(book: CatalogueBook, topics: list[str]) -> str | None:
    """The first avoided topic the book's title, categories or introduction mention (case-insensitive), if any.
    Deliberately strict: a topic named anywhere in the book's description keeps it out."""
    return next((t for t in topics if t.strip() and t.strip().casefold() in book.description), None)
