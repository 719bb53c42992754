"""A pipeline's LLM stage: a handle call with a time budget, which the pipeline answers without when it fails.

Used by the recommender (the ranking) and the book recommender (the choice): when the LLM deployment is down,
runs over the budget, fails or rejects the request, the stage says why, counts a fallback, and the pipeline
answers from what it has (LRURec's order, the search order), flagged with that reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from deployments.pipelines.calls import Overloaded
from deployments.protocol.service_error import ServiceError
from deployments.telemetry import pipeline_metrics

log = logging.getLogger("tandem.llm_stage")


async def llm_stage(pipeline: str, stage: str, work: Callable[[], Awaitable[Any]], budget_s: float,
                    down: str | None) -> Any:
    """`work()`'s answer (its calls to the LLM deployment), or a string saying why there is none. `down` is why
    the LLM deployment cannot take requests, if it cannot: then `work` is not started at all."""
    metrics = pipeline_metrics()
    if down is not None:
        reason = f"llm stage unavailable: {down}"
    else:
        try:
            result = await metrics.timed(pipeline, stage, asyncio.wait_for(work(), timeout=budget_s))
        except asyncio.TimeoutError:
            reason = f"llm stage exceeded its {budget_s:g} s budget"
        except Overloaded:
            reason = "llm stage overloaded: its queue is full"
        except Exception as exc:  # the LLM deployment failed mid-request
            log.warning("llm stage failed", extra={"pipeline": pipeline, "stage": stage, "error": str(exc)})
            reason = f"llm stage failed: {type(exc).__name__}"
        else:
            if not isinstance(result, ServiceError):
                return result
            reason = f"llm stage rejected the request: {result.message}"
    metrics.fallback(pipeline, stage)
    return reason
