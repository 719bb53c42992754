"""Request and response models of the recommender's second stage: `POST /v1/recommendations`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from db.records import ExternalId
from deployments.protocol.candidates import HistoryItem


class RecommendationRequest(BaseModel):
    user_id: ExternalId
    k: int = Field(default=10, ge=1, le=26, description="How many items; at most the number of candidates.")


class Recommendation(BaseModel):
    item_id: str
    title: str | None
    score: float = Field(description="What the items are ordered by: the fused score (LRURec's and the LLM's "
                         "log-probabilities over the candidates, the LLM's weighted), the LLM's label log-probability, "
                         "or LRURec's score on fallback; see `ordered_by`.")
    llm_score: float | None = Field(default=None, description="The LLM's label log-probability (None on fallback).")
    lrurec_rank: int = Field(description="Position in LRURec's candidate list, 0-based.")
    lrurec_score: float = Field(description="LRURec's score of the item.")


class RecommendationResponse(BaseModel):
    user_id: str
    ordered_by: Literal["fused", "llm", "lrurec"] = Field(
        description="`fused`: both stages' scores, at the ranker's tuned weight; `llm`: the LLM's alone (the base "
        "model, or an adapter without a weight); `lrurec`: LRURec's (the LLM stage failed or ran out of time).")
    fusion_weight: float | None = Field(default=None, description="The LLM's weight beside LRURec in the fused "
                                        "order, tuned on validation users when the adapter was trained.")
    fallback: bool = Field(description="True when the LLM stage failed or ran out of time: LRURec's order.")
    fallback_reason: str | None = None
    candidates_fallback: bool = Field(default=False, description="LRURec knew nothing of the user: popular items.")
    adapter: str | None = Field(default=None, description="LoRA adapter that ranked (None: the base model).")
    adapter_served_as: Literal["lora", "merged"] | None = Field(
        default=None, description="`merged`: the adapter's weights merged into a copy of the base (see "
        "TANDEM_LLM_MERGED_ADAPTERS); `lora`: applied by the engine's LoRA path.")
    prompt_tokens: int | None = Field(default=None, description="Tokens of the ranking prompt: the LLM stage's "
                                      "cost (None when LRURec's order is returned).")
    model_versions: dict[str, str | None]
    items: list[Recommendation]
    history: list[HistoryItem] = Field(description="The user's recent history the ranking saw, oldest first.")
    timings_ms: dict[str, float] = Field(description="Milliseconds each stage took (candidates, ranking), "
                                         "seen from the pipeline.")
