"""The retriever deployment: DPR question encoding batched with `@serve.batch`, FAISS and BM25 search, over
two live collections: the RAG passages and the book catalogue.

Each collection follows the database: the active `index` version (and the DPR encoder it was built with)
is loaded on NOTIFY model_versions, and rows added, changed or removed through the API arrive on NOTIFY
passages or NOTIFY books. New rows are chunked, encoded and added to a copy of the index; removed ones are
no longer returned. Each change builds a new `Retriever` that is swapped in with one assignment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db import registry
from db.books import CHANNEL as BOOKS_CHANNEL
from db.books import catalogue_books, catalogue_stamps
from db.passages import CHANNEL as PASSAGES_CHANNEL
from db.passages import passage_ids, passages
from db.pool import Database
from deployments.protocol.books import BookSearchRequest, BookSearchResponse, CatalogueHit
from deployments.protocol.keywords import KeywordsResponse
from deployments.protocol.retrieval import (
    EmbeddingRequest,
    EmbeddingResponse,
    Mode,
    RetrievedPassage,
    RetrieveRequest,
    RetrieveResponse,
)
from deployments.protocol.service_error import ServiceError
from deployments.servers.batching import batched, per_model
from deployments.servers.embeddings import embeddings
from deployments.servers.model_watch import VersionWatch
from deployments.telemetry import replica_logs, served_versions
from models.books.catalogue import CatalogueBook, avoided_topic
from models.dpr.dense_index import IndexConfig
from models.dpr.retriever import DenseSide, Hit, Passage, Query, Retriever, build_dense, load_dense
from tandem.artifacts import node_cache
from tandem.settings import Settings

log = logging.getLogger("tandem.retriever")
INDEX = "index"  # the model whose active version is served


class LiveCollection(VersionWatch):
    """A `Retriever` over one table that follows the database: the active `index` version's encoder on
    NOTIFY model_versions, rows added, changed or removed on NOTIFY `channel`. Subclasses say how rows are
    read and how the dense side is made from an index version."""

    channel: str
    kind: str

    def __init__(self, db: Database, settings: Settings):
        super().__init__(db, [INDEX], settings.model_poll_s, node_cache(settings), channels=(self.channel,))
        self.settings = settings
        self.fusion = settings.retriever_fusion
        self.current: Retriever | None = None
        self.index_version: registry.ModelVersion | None = None
        self.stamps: dict[int, object] = {}
        self._lock = asyncio.Lock()

    async def stamps_now(self, conn) -> dict[int, object]:
        """Row id → a value that changes when the row does."""
        raise NotImplementedError

    async def read(self, conn, ids: list[int]) -> list[Passage]:
        raise NotImplementedError

    def new_dense(self, index: registry.ModelVersion) -> DenseSide:
        raise NotImplementedError

    async def refresh(self) -> bool:
        async with self._lock:  # NOTIFY and the poll can both ask at once
            async with self.db.acquire() as conn:
                active = await registry.active_version(conn, INDEX)
                stamps = await self.stamps_now(conn)
                known = self.current.passages if self.current else {}
                changed = [i for i, stamp in stamps.items() if i not in known or self.stamps.get(i) != stamp]
                rows = {p.id: p for p in await self.read(conn, changed)}
            new_index = active is not None and (self.index_version is None or active.id != self.index_version.id)
            active = await self.local(active) if new_index else active
            if self.current is not None and not new_index and not changed and stamps.keys() == known.keys():
                return False
            collection = [rows.get(i) or known[i] for i in sorted(stamps)]
            started = time.monotonic()
            self.current = await asyncio.to_thread(self._build, collection, active if new_index else None,
                                                   set(rows) & set(known))
            self.stamps = stamps
            if new_index:
                served_versions().serving(INDEX, active.version)
                self.index_version = active
            log.info("retrieval collection loaded", extra={"collection": self.kind, "rows": len(collection),
                                                          "index": active.version if active else None,
                                                          "seconds": round(time.monotonic() - started, 2)})
            self.loaded(collection)
            return True

    def loaded(self, collection: list[Passage]) -> None:
        """Called with the collection just swapped in."""

    def _build(self, collection: list[Passage], index: registry.ModelVersion | None, updated: set[int],
               ) -> Retriever:
        if index is not None:
            dense = self.new_dense(index)
        else:
            dense = self.current.dense if self.current else None
            if dense is not None and updated:
                # An edited row's new text is encoded; its old chunks stay in FAISS, pointing at the same row,
                # until the next index build.
                dense = dense.add([p for p in collection if p.id in updated])
        return Retriever([], dense, **self.fusion).with_collection(collection)


class PassageCollection(LiveCollection):
    """The RAG passages, searched with the index the `index` pipeline built over them."""

    channel, kind = PASSAGES_CHANNEL, "passages"

    async def stamps_now(self, conn) -> dict[int, object]:
        # Passages are replaced, never edited in place: a changed document gets new passage ids.
        return dict.fromkeys(await passage_ids(conn))

    async def read(self, conn, ids: list[int]) -> list[Passage]:
        return [Passage(**r) for r in await passages(conn, ids)] if ids else []

    def new_dense(self, index: registry.ModelVersion) -> DenseSide:
        return load_dense(Path(index.artifact_path), self.settings.model_device("retriever"))


class BookCollection(LiveCollection):
    """The book catalogue, encoded by the active index's DPR encoder into an exact index of its own (a
    catalogue is small); searched by BM25 alone until an index exists."""

    channel, kind = BOOKS_CHANNEL, "books"

    def __init__(self, db: Database, settings: Settings):
        super().__init__(db, settings)
        self.books: dict[int, CatalogueBook] = {}
        self.by_external_id: dict[str, int] = {}
        self._fresh: dict[int, CatalogueBook] = {}  # read, not yet swapped in

    async def stamps_now(self, conn) -> dict[int, object]:
        return await catalogue_stamps(conn)

    async def read(self, conn, ids: list[int]) -> list[Passage]:
        rows = await catalogue_books(conn, ids) if ids else []
        found = []
        for r in rows:
            book = CatalogueBook(r["external_id"], r["title"], r["author"], tuple(r["categories"]), r["introduction"])
            self._fresh[r["id"]] = book
            found.append(Passage(id=r["id"], document=book.id, title=book.title, source=book.author,
                                 text=book.search_text()))
        return found

    def new_dense(self, index: registry.ModelVersion) -> DenseSide:
        encoder = load_dense(Path(index.artifact_path), self.settings.model_device("retriever")).encoder
        return build_dense(encoder, [], IndexConfig(kind="flat"), self.settings.chunk_tokens)

    def loaded(self, collection: list[Passage]) -> None:
        self.books = {p.id: self._fresh.get(p.id) or self.books[p.id] for p in collection}
        self.by_external_id = {b.id: i for i, b in self.books.items()}
        self._fresh = {}


def to_response(hit: Hit) -> RetrievedPassage:
    p = hit.passage
    return RetrievedPassage(passage_id=p.id, document_id=p.document, title=p.title, source=p.source, text=p.text,
                            score=hit.score, dense_score=hit.dense_score, dense_rank=hit.dense_rank,
                            sparse_score=hit.sparse_score, sparse_rank=hit.sparse_rank)


@dataclass(frozen=True)
class Search:
    """One query of a batch, on the collection it started with."""

    retriever: Retriever
    query: Query


def search_mode(retriever: Retriever | None, mode: Mode, collection: str,
                ) -> tuple[Mode, str | None] | ServiceError:
    """The mode to search `collection` with, and why it is not the one asked: hybrid is answered by BM25
    while no dense index exists; dense is refused, and so is a collection that could not be loaded."""
    if retriever is None:
        return ServiceError(status=503, type="service_unavailable",
                            message=f"the {collection} could not be loaded from the database")
    if mode == "sparse" or retriever.dense is not None:
        return mode, None
    reason = "no dense index yet: run `tandem train dpr` (or `tandem index build`)"
    if mode == "dense":
        return ServiceError(status=503, type="service_unavailable", param="mode",
                            message=f"dense search of the {collection}: {reason}")
    return "sparse", f"hybrid answered by sparse: {reason}"


@serve.deployment(name="Retriever", max_ongoing_requests=128)
class RetrieverServer:
    async def __init__(self, settings: Settings):
        replica_logs()
        db = Database(settings.database_url, min_size=1, max_size=3)
        self.collection = PassageCollection(db, settings)
        self.catalogue = BookCollection(db, settings)
        await asyncio.gather(self.collection.start(), self.catalogue.start())
        self.batch_sizes = batched(self.search_batch, settings.retriever_max_batch_size,
                                   settings.retriever_batch_wait_ms, "tandem_retriever_batch_size",
                                   "Queries per encoder forward pass.")
        self.requests = Counter("tandem_retriever_requests", description="Retrieval requests by mode and outcome.",
                                tag_keys=("mode", "outcome", "collection"))
        self.latency = Histogram("tandem_retriever_seconds", description="Retrieval latency in the deployment.",
                                 boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
                                 tag_keys=("mode", "collection"))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def search_batch(self, searches: list[Search]) -> list[list[Hit]]:
        self.batch_sizes.observe(len(searches))
        # Searches of the two collections share a batch; each is searched by its own collection's retriever.
        return await per_model(searches, lambda s: s.retriever, in_thread=False,
                               run=lambda retriever, rows: retriever.search_many([s.query for s in rows]))

    async def _measured(self, collection: str, mode: Mode, search: Awaitable):
        started = time.monotonic()
        result = await search
        outcome = "error" if isinstance(result, ServiceError) else "fallback" if result.fallback else "ok"
        self.requests.inc(tags={"mode": mode, "outcome": outcome, "collection": collection})
        self.latency.observe(time.monotonic() - started, tags={"mode": mode, "collection": collection})
        return result

    async def retrieve(self, request: RetrieveRequest, keywords: KeywordsResponse | ServiceError | None = None,
                       ) -> RetrieveResponse | ServiceError:
        """`keywords`, when given, are added to BM25's query (the keyword deployment's answer for the query)."""
        if isinstance(keywords, ServiceError):
            return keywords
        if keywords is not None:
            expanded = " ".join([request.sparse_query or request.query, *keywords.results[0].keywords])
            request = request.model_copy(update={"sparse_query": expanded})
        return await self._measured("passages", request.mode, self._retrieve(request))

    async def _retrieve(self, request: RetrieveRequest) -> RetrieveResponse | ServiceError:
        retriever, index = self.collection.current, self.collection.index_version
        chosen = search_mode(retriever, request.mode, "passage collection")
        if isinstance(chosen, ServiceError):
            return chosen
        mode, fallback = chosen
        hits = await self.search_batch(Search(retriever, Query(request.query, request.top_k, mode, request.dense_weight,
                                                               request.sparse_query)))
        return RetrieveResponse(query=request.query, mode=mode, passages=[to_response(h) for h in hits],
                                index_version=index.version if index and retriever.dense else None,
                                fallback=fallback)

    async def search_books(self, request: BookSearchRequest) -> BookSearchResponse | ServiceError:
        """Catalogue books for a query, never one in `exclude` or one that mentions an avoided topic."""
        return await self._measured("books", request.mode, self._search_books(request))

    async def _search_books(self, request: BookSearchRequest) -> BookSearchResponse | ServiceError:
        retriever, books = self.catalogue.current, self.catalogue.books
        chosen = search_mode(retriever, request.mode, "book catalogue")
        if isinstance(chosen, ServiceError):
            return chosen
        mode, fallback = chosen
        excluded = {self.catalogue.by_external_id.get(b) for b in request.exclude}
        avoid = request.avoid_topics

        def keep(book: int) -> bool:
            return book not in excluded and avoided_topic(books[book], avoid) is None

        hits = await self.search_batch(Search(retriever, Query(request.query, request.top_k, mode, keep=keep)))
        found = [CatalogueHit(book_id=books[h.passage.id].id, title=h.passage.title, author=h.passage.source,
                              categories=list(books[h.passage.id].categories),
                              introduction=books[h.passage.id].introduction, score=h.score) for h in hits]
        return BookSearchResponse(books=found, mode=mode, catalogue=len(books), fallback=fallback)

    def status(self) -> dict:
        """The served index version, the passages searchable by BM25, how many of them the dense index holds,
        and the catalogue's size."""
        current = self.collection.current
        indexed = None
        if current is not None and current.dense is not None:
            indexed = len(current.dense.indexed_passages() & current.passages.keys())
        return {"index": self.collection.index_version.version if self.collection.index_version else None,
                "passages": len(current.passages) if current else None, "indexed_passages": indexed,
                "books": len(self.catalogue.current.passages) if self.catalogue.current else None}

    def __del__(self) -> None:
        for name in ("collection", "catalogue"):
            if (collection := getattr(self, name, None)) is not None:
                collection.stop()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse | ServiceError:
        """OpenAI embeddings from the encoders of the active passage index: the vectors the retriever searches
        with."""
        retriever = self.collection.current
        return await embeddings(retriever.dense.encoder if retriever and retriever.dense else None, request)
