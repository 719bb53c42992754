"""The candidate deployment: LRURec top-k, batched into one forward pass, on the active model version."""

from __future__ import annotations

import time
from pathlib import Path

from ray import serve
from ray.serve.metrics import Counter, Histogram

from db.errors import MissingReferences, NotFound
from db.interactions import RecentHistory
from db.pool import Database
from db.upsert import missing_ids
from deployments.protocol.candidates import Candidate, CandidateRequest, CandidateResponse, HistoryItem
from deployments.protocol.service_error import ServiceError
from deployments.servers.batching import batched, per_model
from deployments.servers.history_cache import HistoryCache
from deployments.servers.model_watch import ActiveModel, ServesActiveModel
from deployments.telemetry import replica_logs
from models.lrurec.checkpoint import Checkpoint
from models.lrurec.recommender import Ranked, Recommender
from tandem.artifacts import node_cache
from tandem.settings import Settings

PIPELINE = "lrurec"


def load_recommender(version, device: str) -> Recommender:
    return Recommender(Checkpoint.load(Path(version.artifact_path)), device)


@serve.deployment(name="Candidates", max_ongoing_requests=128)
class CandidateServer(ServesActiveModel):
    async def __init__(self, settings: Settings):
        replica_logs()
        self.db = Database(settings.database_url, min_size=1, max_size=settings.db_pool_max_size)
        device = settings.model_device("candidates")
        self.active = ActiveModel(self.db, PIPELINE, lambda v: load_recommender(v, device), settings.model_poll_s,
                                  node_cache(settings))
        self.histories = HistoryCache(self.db, settings.candidates_cache_users, settings.candidates_cache_titles)
        self.histories.start()
        await self.active.start()
        self.batch_sizes = batched(self.rank_batch, settings.candidates_max_batch_size,
                                   settings.candidates_batch_wait_ms, "tandem_candidates_batch_size",
                                   "Requests per forward pass.")
        self.requests = Counter("tandem_candidates_requests", description="Candidate requests by outcome.",
                                tag_keys=("outcome",))
        self.latency = Histogram("tandem_candidates_seconds", description="Candidate latency in the deployment.",
                                 boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def rank_batch(self, requests: list[tuple[Recommender, list[str], frozenset[str] | None, int]],
                         ) -> list[Ranked]:
        self.batch_sizes.observe(len(requests))
        return await per_model(requests, lambda r: r[0], lambda model, rows: model.rank(
            [r[1] for r in rows], [r[3] for r in rows], [r[2] for r in rows]), in_thread=False)

    async def candidates(self, request: CandidateRequest) -> CandidateResponse | ServiceError:
        started = time.monotonic()
        result = await self._candidates(request)
        self.requests.inc(tags={"outcome": "error" if isinstance(result, ServiceError) else "ok"})
        self.latency.observe(time.monotonic() - started)
        return result

    async def _recent(self, model: Recommender, user_id: str, include: int) -> RecentHistory:
        """The user's recent history, deep enough that the model sees what the whole history would show it: its
        last `max_len` items that it knows (items too rare to train on, or newer than the model, are skipped)."""
        max_len = model.model.cfg.max_len
        depth = max(max_len, include)
        found = await self.histories.history(user_id, depth)
        while len(found.item_ids) >= depth and len(model.known(found.item_ids)) < max_len:
            depth *= 2
            found = await self.histories.history(user_id, depth)
        return found

    async def _candidates(self, request: CandidateRequest) -> CandidateResponse | ServiceError:
        model, version = self.active.current, self.active.version
        if model is None:
            return ServiceError(status=503, type="service_unavailable",
                               message="no trained LRURec model is active yet: run `tandem train lrurec`")
        if request.k > model.num_items:
            return ServiceError(status=422, param="k",
                               message=f"k={request.k} is above the catalogue of {model.num_items} items")
        # No connection is held across the forward pass: a batch is as large as the requests, not the pool.
        if request.user_id is not None:
            try:
                found = await self._recent(model, request.user_id, request.include_history)
            except NotFound as exc:
                return ServiceError(status=404, type="not_found_error", param="user_id", message=str(exc))
            history, comments, seen = found.item_ids, found.comments, found.seen
        else:
            async with self.db.acquire() as conn:
                missing = await missing_ids(conn, "items", request.history)
            if missing:
                error = MissingReferences("item", missing)
                return ServiceError(status=404, type="not_found_error", param="history", message=str(error))
            history, comments, seen = request.history, [None] * len(request.history), None
        ranked = await self.rank_batch((model, history, seen, request.k))
        n = request.include_history
        recent, recent_comments = (history[-n:], comments[-n:]) if n else ([], [])
        names = await self.histories.item_titles(ranked.item_ids + recent)
        return CandidateResponse(
            user_id=request.user_id, model_version=version.version, fallback=ranked.fallback,
            candidates=[Candidate(item_id=i, title=names.get(i), score=s)
                        for i, s in zip(ranked.item_ids, ranked.scores, strict=True)],
            history=[HistoryItem(item_id=i, title=names.get(i), comment=c)
                     for i, c in zip(recent, recent_comments, strict=True)],
        )

    def __del__(self) -> None:
        if (histories := getattr(self, "histories", None)) is not None:
            histories.stop()
        super().__del__()
