"""OpenAI embeddings from a DPR dual encoder: `dpr-question` for queries, `dpr-passage` for what is indexed."""

from __future__ import annotations

import asyncio
import base64

from deployments.protocol.retrieval import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from deployments.protocol.service_error import ServiceError
from models.dpr.encoder import DualEncoder

EMBEDDING_MODELS = ("dpr-question", "dpr-passage")


async def embeddings(encoder: DualEncoder | None, request: EmbeddingRequest) -> EmbeddingResponse | ServiceError:
    """The vectors `encoder` gives `request.input` (None: no encoder is active), in OpenAI's shape."""
    if request.model not in EMBEDDING_MODELS:
        return ServiceError(status=404, type="not_found_error", param="model",
                            message=f"model '{request.model}' is not served here; embeddings come from "
                                    f"{' and '.join(EMBEDDING_MODELS)}")
    if encoder is None:
        return ServiceError(status=503, type="service_unavailable",
                            message="no DPR encoder is active yet: train one (POST /v1/train with pipeline dpr)")
    if request.dimensions not in (None, encoder.dim):
        return ServiceError(status=400, param="dimensions",
                            message=f"{request.model} gives {encoder.dim} dimensions, not {request.dimensions}")
    texts = [request.input] if isinstance(request.input, str) else request.input
    question = request.model == "dpr-question"
    vectors = await asyncio.to_thread(encoder.encode_questions if question else encoder.encode_passages, texts)
    tokens = encoder.token_count(texts, question)
    data = [Embedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                      if request.encoding_format == "base64" else v.tolist()) for i, v in enumerate(vectors)]
    return EmbeddingResponse(data=data, model=request.model,
                             usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
