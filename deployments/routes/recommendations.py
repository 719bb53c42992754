"""The recommender's routes: LRURec's candidates, and the LLM-ranked recommendations built on them."""

from __future__ import annotations

from fastapi import APIRouter

from deployments.pipelines.calls import call
from deployments.pipelines.recommend import recommend
from deployments.protocol.candidates import CandidateRequest, CandidateResponse
from deployments.protocol.recommendations import RecommendationRequest, RecommendationResponse
from deployments.routes.common import Served, allowed, answered, errors, needs

router = APIRouter(prefix="/v1", dependencies=[allowed("inference")], responses=errors(401, 403))


@router.post("/candidates", tags=["candidates"], dependencies=[needs("candidates")],
             response_model=CandidateResponse, responses=errors(404, 422, 503),
             summary="LRURec top-k candidates for a user id or an explicit history, the history excluded.")
async def candidates(request: CandidateRequest, services: Served):
    return answered(await call(services.candidates.candidates, request))


@router.post("/recommendations", tags=["recommendation"], dependencies=[needs("candidates")],
             response_model=RecommendationResponse, responses=errors(404, 422, 503),
             summary="LRURec candidates reordered by the LLM verbalizer (the `ranker` adapter); LRURec's order, "
                     "flagged, when the LLM stage fails or runs out of time.")
async def recommendations(request: RecommendationRequest, services: Served):
    return answered(await recommend(request, services))
