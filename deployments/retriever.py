"""The retriever deployment: DPR question encoding batched with `@serve.batch`, FAISS and BM25 search, over
the live passage collection.

The served collection follows the database: the active `index` version (and the DPR encoder it was built
with) is loaded on NOTIFY model_versions, and passages added or removed through the API arrive on
NOTIFY passages. New passages are chunked, encoded and added to a copy of the index; removed ones are no
longer returned. Each change builds a new `Retriever` that is swapped in with one assignment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db import registry
from db.passages import CHANNEL, passage_ids, passages
from db.pool import Database
from deployments.model_watch import VersionWatch
from deployments.retriever_protocol import RetrievedPassage, RetrieveRequest, RetrieveResponse
from deployments.service_error import ServiceError
from models.dpr.retriever import Hit, Passage, Retriever
from tandem.jobs.retrieval import INDEX, fusion_options, load_dense
from tandem.settings import Settings

log = logging.getLogger("tandem.retriever")


class LiveCollection(VersionWatch):
    def __init__(self, db: Database, settings: Settings):
        super().__init__(db, [INDEX], settings.model_poll_s, channels=(CHANNEL,))
        self.fusion = fusion_options(settings)
        self.current: Retriever | None = None
        self.index_version: registry.ModelVersion | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        async with self._lock:  # NOTIFY and the poll can both ask at once
            async with self.db.acquire() as conn:
                active = await registry.active_version(conn, INDEX)
                ids = await passage_ids(conn)
                known = self.current.passages if self.current else {}
                rows = await passages(conn, [i for i in ids if i not in known])
            new_index = active is not None and (self.index_version is None or active.id != self.index_version.id)
            if self.current is not None and not new_index and ids == sorted(known):
                return False
            collection = [known.get(i) for i in ids]
            fresh = iter(Passage(**r) for r in rows)
            collection = [p if p is not None else next(fresh) for p in collection]
            started = time.monotonic()
            self.current = await asyncio.to_thread(self._build, collection, active if new_index else None)
            if new_index:
                self.index_version = active
            log.info("retrieval collection loaded", extra={"passages": len(collection),
                                                          "index": active.version if active else None,
                                                          "seconds": round(time.monotonic() - started, 2)})
            return True

    def _build(self, collection: list[Passage], index: registry.ModelVersion | None) -> Retriever:
        if index is not None:
            dense = load_dense(Path(index.artifact_path))
        else:
            dense = self.current.dense if self.current else None
        return Retriever([], dense, **self.fusion).with_collection(collection)


def to_response(hit: Hit) -> RetrievedPassage:
    p = hit.passage
    return RetrievedPassage(passage_id=p.id, document_id=p.document, title=p.title, source=p.source, text=p.text,
                            score=hit.score, dense_score=hit.dense_score, dense_rank=hit.dense_rank,
                            sparse_score=hit.sparse_score, sparse_rank=hit.sparse_rank)


@serve.deployment(name="Retriever", max_ongoing_requests=128)
class RetrieverServer:
    async def __init__(self, settings: Settings):
        self.collection = LiveCollection(Database(settings.database_url, min_size=1, max_size=2), settings)
        await self.collection.start()
        self.search_batch.set_max_batch_size(settings.retriever_max_batch_size)
        self.search_batch.set_batch_wait_timeout_s(settings.retriever_batch_wait_ms / 1000)
        self.batch_sizes = Histogram("tandem_retriever_batch_size", description="Queries per encoder forward pass.",
                                     boundaries=[1, 2, 4, 8, 16, 32, 64])
        self.requests = Counter("tandem_retriever_requests", description="Retrieval requests by mode and outcome.",
                                tag_keys=("mode", "outcome"))
        self.latency = Histogram("tandem_retriever_seconds", description="Retrieval latency in the deployment.",
                                 boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2], tag_keys=("mode",))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def search_batch(self, requests: list[tuple[Retriever, RetrieveRequest]]) -> list[list[Hit]]:
        self.batch_sizes.observe(len(requests))
        return await asyncio.to_thread(self._search, requests)

    @staticmethod
    def _search(requests: list[tuple[Retriever, RetrieveRequest]]) -> list[list[Hit]]:
        results: list[list[Hit] | None] = [None] * len(requests)
        # Requests that started on different collections (during a swap) are searched by their own.
        for retriever in {id(r[0]): r[0] for r in requests}.values():
            rows = [i for i, r in enumerate(requests) if r[0] is retriever]
            dense_rows = [i for i in rows if requests[i][1].mode != "sparse"]
            vectors = retriever.encode([requests[i][1].query for i in dense_rows]) if dense_rows else None
            vector_of = {i: vectors[n : n + 1] for n, i in enumerate(dense_rows)}
            for i in rows:
                request = requests[i][1]
                results[i] = retriever.search([request.query], request.top_k, request.mode, vector_of.get(i),
                                              request.dense_weight, request.sparse_query)[0]
        return results

    async def retrieve(self, request: RetrieveRequest) -> RetrieveResponse | ServiceError:
        started = time.monotonic()
        result = await self._retrieve(request)
        outcome = "error" if isinstance(result, ServiceError) else "fallback" if result.fallback else "ok"
        self.requests.inc(tags={"mode": request.mode, "outcome": outcome})
        self.latency.observe(time.monotonic() - started, tags={"mode": request.mode})
        return result

    async def _retrieve(self, request: RetrieveRequest) -> RetrieveResponse | ServiceError:
        retriever, index = self.collection.current, self.collection.index_version
        if retriever is None:
            return ServiceError(status=503, type="service_unavailable",
                                message="the passage collection could not be loaded from the database")
        fallback = None
        if request.mode != "sparse" and retriever.dense is None:
            reason = "no dense index yet: run `tandem train dpr` (or `tandem index build`)"
            if request.mode == "dense":
                return ServiceError(status=503, type="service_unavailable", param="mode", message=reason)
            request, fallback = request.model_copy(update={"mode": "sparse"}), f"hybrid answered by sparse: {reason}"
        hits = await self.search_batch((retriever, request))
        return RetrieveResponse(query=request.query, mode=request.mode, passages=[to_response(h) for h in hits],
                                index_version=index.version if index and retriever.dense else None,
                                fallback=fallback)

    def status(self) -> dict:
        """The served index version, the passages searchable by BM25, and how many of them the dense index holds."""
        current = self.collection.current
        indexed = None
        if current is not None and current.dense is not None:
            indexed = len(current.dense.indexed_passages() & current.passages.keys())
        return {"index": self.collection.index_version.version if self.collection.index_version else None,
                "passages": len(current.passages) if current else None, "indexed_passages": indexed}

    def __del__(self) -> None:
        collection = getattr(self, "collection", None)
        if collection is not None:
            collection.stop()
