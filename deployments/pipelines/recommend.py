"""The recommendation pipeline: LRURec candidates, then the LLM verbalizer scores them and the served order fuses
both stages' scores (models/verbalizer/fusion.py).

The LLM stage has a time budget; when it fails or runs out, LRURec's own order is returned and
flagged, so the endpoint degrades instead of failing.
"""

from __future__ import annotations

import time

from db.pool import Database
from db.users import get_user, list_surveys
from deployments.pipelines.calls import call
from deployments.pipelines.llm_prompts import RANKER, Ranker
from deployments.pipelines.llm_stage import llm_stage
from deployments.pipelines.services import Services
from deployments.protocol.candidates import Candidate, CandidateRequest, CandidateResponse
from deployments.protocol.llm import AdapterChanged, LabelScores, ScoreLabels
from deployments.protocol.recommendations import Recommendation, RecommendationRequest, RecommendationResponse
from deployments.protocol.service_error import ServiceError
from deployments.telemetry import pipeline_metrics
from models.verbalizer.fusion import fused_scores, order_by
from models.verbalizer.prompts import Profile

PIPELINE = "recommendation"


async def user_profile(db: Database, user_id: str, comments: list[str]) -> Profile:
    """GemmaRecAPI's profile: the user's own fields and latest `profile` survey, plus their comments."""
    async with db.acquire() as conn:
        user = await get_user(conn, user_id)
        surveys = await list_surveys(conn, user_id, "profile", limit=1)
    fields = {k: v for k, v in {"sex": user.sex, "job": user.job, "married": user.married, "style": user.style}.items()
              if v is not None}
    fields |= {**user.attributes, **(surveys[0].answers if surveys else {})}
    return Profile(attributes={k: str(v) for k, v in fields.items()}, comments=comments)


async def rank(services: Services, history: list[str], candidates: list[str], profile: Profile | None,
               ) -> tuple[LabelScores, Ranker] | ServiceError:
    """The verbalizer: the candidates' labels' log-probabilities, read from one forward pass of the ranker adapter
    (the base model until one is trained) with the prompt that adapter version was trained on, and that version's
    ranker (its fusion weight). Built again, once, when the version served is not the one the prompt was built
    for."""
    prompts = services.prompts
    for _ in range(2):
        version = prompts.ranker_version
        ranker = await prompts.ranker(services.db, version)
        try:
            prompt = ranker.verbalizer.prompt_ids(history, candidates, profile)
        except ValueError as exc:
            return ServiceError(status=422, param="candidates", message=str(exc))
        scored = await call(services.llm.score_labels, ScoreLabels(
            prompt=prompt, labels=ranker.verbalizer.label_ids[: len(candidates)], adapter=RANKER,
            adapter_version=version, kind="rank"))
        if isinstance(scored, ServiceError):
            return scored
        if not isinstance(scored, AdapterChanged):
            return scored, ranker
        prompts.ranker_version = scored.served
    return ServiceError(status=503, type="service_unavailable",
                        message="the ranker adapter changed twice during the request; try again")


def ranked_items(pool: list[Candidate], llm: list[float], weight: float | None,
                 popular: bool) -> tuple[list[Recommendation], str, float | None]:
    """The candidates in the served order, what ordered them and the fusion weight used: LRURec's and the LLM's
    scores fused at the ranker's weight, or the LLM's alone (no weight, or `popular` items, whose scores are counts,
    not LRURec's)."""
    if popular:
        weight = None
    final = fused_scores([c.score for c in pool], llm, weight) if weight is not None else llm
    items = [Recommendation(item_id=pool[i].item_id, title=pool[i].title, score=final[i], llm_score=llm[i],
                            lrurec_rank=i, lrurec_score=pool[i].score) for i in order_by(final)]
    return items, "llm" if weight is None else "fused", weight


async def recommend(request: RecommendationRequest, services: Services) -> RecommendationResponse | ServiceError:
    settings, metrics = services.settings, pipeline_metrics()
    wanted = CandidateRequest(user_id=request.user_id, k=settings.ranker_candidates,
                              include_history=settings.verbalizer_max_history)
    started = time.monotonic()
    found: CandidateResponse | ServiceError = await metrics.timed(PIPELINE, "candidates",
                                                                  call(services.candidates.candidates, wanted))
    timings = {"candidates": round((time.monotonic() - started) * 1000, 1)}
    if isinstance(found, ServiceError):
        return found
    if found.fallback:
        metrics.fallback(PIPELINE, "candidates")
    pool = found.candidates
    profile = None
    if settings.verbalizer_template == "gemmarec":
        profile = await user_profile(services.db, request.user_id, [h.comment for h in found.history if h.comment])
    history, titles = [h.title or h.item_id for h in found.history], [c.title or c.item_id for c in pool]
    started = time.monotonic()
    ranked = await llm_stage(PIPELINE, "ranking", lambda: rank(services, history, titles, profile),
                             settings.ranker_timeout_s, services.llm_down())
    timings["ranking"] = round((time.monotonic() - started) * 1000, 1)
    reason = ranked if isinstance(ranked, str) else None
    if reason is None:
        scores, ranker = ranked
        items, ordered_by, weight = ranked_items(pool, scores.logprobs, ranker.fusion_weight, found.fallback)
        adapter, served_as, prompt_tokens = scores.adapter, scores.served_as, scores.prompt_tokens
        versions = {"lrurec": found.model_version, "ranker": scores.adapter_version}
    else:
        items = [Recommendation(item_id=c.item_id, title=c.title, score=c.score, lrurec_rank=i, lrurec_score=c.score)
                 for i, c in enumerate(pool)]
        adapter, served_as, prompt_tokens, versions = None, None, None, {"lrurec": found.model_version}
        ordered_by, weight = "lrurec", None
    return RecommendationResponse(
        user_id=request.user_id, ordered_by=ordered_by, fusion_weight=weight, fallback=reason is not None,
        fallback_reason=reason, candidates_fallback=found.fallback, adapter=adapter, adapter_served_as=served_as,
        prompt_tokens=prompt_tokens, model_versions=versions, items=items[: request.k], history=found.history,
        timings_ms=timings,
    )
