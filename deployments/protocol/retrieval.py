"""Request and response bodies of retrieval and question answering."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

Mode = Literal["dense", "sparse", "hybrid"]
MAX_QUERY_CHARS = 2000
MAX_EMBEDDING_INPUTS = 256
MAX_EMBEDDING_CHARS = 20_000


class RetrieveRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")
    top_k: int = Field(default=5, ge=1, le=50)
    mode: Mode = "hybrid"
    dense_weight: float | None = Field(default=None, ge=0, le=100,
                                       description="Hybrid only: the dense ranking's fusion weight (BM25's is 1).")
    expand_keywords: bool = Field(default=False, description="Add the query's extracted keywords to BM25's query.")
    sparse_query: str | None = Field(default=None, max_length=2 * MAX_QUERY_CHARS,
                                     description="BM25's query text when it differs from `query`.")


class RetrievedPassage(BaseModel):
    passage_id: int
    document_id: str = Field(description="The document's external id.")
    title: str
    source: str | None
    text: str = Field(description="The whole passage, whichever of its chunks matched.")
    score: float = Field(description="The score the order is by: RRF in hybrid mode, else the mode's own.")
    dense_score: float | None = None
    dense_rank: int | None = None
    sparse_score: float | None = None
    sparse_rank: int | None = None


class RetrieveResponse(BaseModel):
    query: str
    mode: Mode = Field(description="The mode used; hybrid falls back to sparse while no dense index exists.")
    passages: list[RetrievedPassage]
    index_version: str | None = Field(description="The dense index served; null when only BM25 is available.")
    fallback: str | None = Field(default=None, description="Why the requested mode was not used, if it was not.")


class QARequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")
    top_k: int = Field(default=3, ge=1, le=10, description="Passages given to the LLM.")
    mode: Mode = "hybrid"
    max_tokens: int = Field(default=256, ge=1, le=2048)
    stream: bool = False


class QAResponse(BaseModel):
    question: str
    answer: str
    answered: bool = Field(description="False when no relevant passage was found and the LLM was not asked.")
    passages: list[RetrievedPassage]
    sources: list[str] = Field(description="Distinct sources of the passages given to the LLM, in order.")
    model: str | None = Field(description="The model that wrote the answer; null when none was asked.")
    adapter_version: str | None
    mode: Mode
    fallback: str | None = None



class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request, served by the active DPR encoders."""

    model: str = Field(description="`dpr-question` (the question encoder) or `dpr-passage` (the passage encoder).")
    input: str | list[str] = Field(description="A text or a list of texts; each is truncated to the encoder's "
                                   "token limit, as the retriever truncates it.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="`base64`: little-endian float32, what the OpenAI clients ask for.")
    dimensions: int | None = Field(default=None, description="Only the encoder's own dimension is served.")
    user: str | None = None

    @field_validator("input")
    @classmethod
    def texts(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not 1 <= len(texts) <= MAX_EMBEDDING_INPUTS:
            raise ValueError(f"give between 1 and {MAX_EMBEDDING_INPUTS} texts, not {len(texts)}")
        if any(not t.strip() or len(t) > MAX_EMBEDDING_CHARS for t in texts):
            raise ValueError(f"every text must be non-blank and at most {MAX_EMBEDDING_CHARS} characters")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
