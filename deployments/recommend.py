"""The recommendation pipeline: LRURec candidates, then the LLM verbalizer reorders them.

The LLM stage has a time budget; when it fails or runs out, LRURec's own order is returned and
flagged, so the endpoint degrades instead of failing.
"""

from __future__ import annotations

from ray.serve.handle import DeploymentHandle

from db.pool import Database
from db.users import get_user, list_surveys
from deployments.calls import call
from deployments.candidates_protocol import CandidateRequest, CandidateResponse
from deployments.llm_stage import llm_stage
from deployments.recommend_protocol import (
    RankRequest,
    RankResult,
    Recommendation,
    RecommendationRequest,
    RecommendationResponse,
)
from deployments.service_error import ServiceError
from deployments.telemetry import pipeline_metrics
from models.verbalizer.prompts import Profile
from tandem.settings import Settings

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


async def recommend(
    request: RecommendationRequest, settings: Settings, db: Database, candidates: DeploymentHandle,
    llm: DeploymentHandle, llm_down: str | None = None,
) -> RecommendationResponse | ServiceError:
    """`llm_down` says why the LLM deployment cannot take requests, if it cannot: the ranking is skipped."""
    metrics = pipeline_metrics()
    wanted = CandidateRequest(user_id=request.user_id, k=settings.ranker_candidates,
                              include_history=settings.verbalizer_max_history)
    found: CandidateResponse | ServiceError = await metrics.timed(PIPELINE, "candidates",
                                                                  call(candidates.candidates, wanted))
    if isinstance(found, ServiceError):
        return found
    if found.fallback:
        metrics.fallback(PIPELINE, "candidates")
    pool = found.candidates
    profile = None
    if settings.verbalizer_template == "gemmarec":
        profile = await user_profile(db, request.user_id, [h.comment for h in found.history if h.comment])
    rank = RankRequest(history=[h.title or h.item_id for h in found.history],
                       candidates=[c.title or c.item_id for c in pool], profile=profile)
    ranked: RankResult | str = await llm_stage(PIPELINE, "ranking", llm.rank, rank, settings.ranker_timeout_s,
                                               llm_down)
    reason = ranked if isinstance(ranked, str) else None
    if isinstance(ranked, RankResult):
        items = [Recommendation(item_id=pool[i].item_id, title=pool[i].title, score=ranked.logprobs[i],
                                lrurec_rank=i) for i in ranked.order]
        adapter, served_as, prompt_tokens = ranked.adapter, ranked.adapter_served_as, ranked.prompt_tokens
        versions = {"lrurec": found.model_version, "ranker": ranked.adapter_version}
    else:
        items = [Recommendation(item_id=c.item_id, title=c.title, score=c.score, lrurec_rank=i)
                 for i, c in enumerate(pool)]
        adapter, served_as, prompt_tokens, versions = None, None, None, {"lrurec": found.model_version}
    return RecommendationResponse(
        user_id=request.user_id, ordered_by="lrurec" if reason else "llm", fallback=reason is not None,
        fallback_reason=reason, candidates_fallback=found.fallback, adapter=adapter, adapter_served_as=served_as,
        prompt_tokens=prompt_tokens, model_versions=versions, items=items[: request.k],
    )
