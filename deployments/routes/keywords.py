"""Keyword extraction: KoBART, or the morphological analyser until a model is trained."""

from __future__ import annotations

from fastapi import APIRouter

from deployments.pipelines.calls import call
from deployments.protocol.keywords import KeywordsRequest, KeywordsResponse
from deployments.routes.common import Served, allowed, answered, errors, needs

router = APIRouter(prefix="/v1", dependencies=[allowed("inference")], responses=errors(401, 403))


@router.post("/keywords", tags=["keywords"], dependencies=[needs("keywords")],
             response_model=KeywordsResponse, responses=errors(422, 503),
             summary="Keywords of a text (`text`) or of up to 64 (`texts`), by the fine-tuned KoBART in one batched "
                     "beam search, or by the morphological analyser until a model is trained (`model` says which).")
async def keywords(request: KeywordsRequest, services: Served):
    return answered(await call(services.keywords.extract, request))
