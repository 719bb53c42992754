"""The LLM deployment's generic operations, in token ids: score labels as the next token, and generate (free or
JSON constrained to a schema). It knows no pipeline: the pipelines build their prompts
(deployments/pipelines/llm_prompts.py) and read the answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LLMCall(BaseModel):
    prompt: list[int] = Field(min_length=1, description="Prompt token ids of the LLM's tokenizer.")
    adapter: str | None = Field(default=None, description="LoRA adapter; the base model when it is not loaded.")
    kind: str = Field(description="What the call is for, as the metrics label it (rank, answer, books, judge).")


class ScoreLabels(LLMCall):
    labels: list[int] = Field(min_length=1, description="Token ids whose next-token log-probabilities are wanted.")
    adapter_version: str | None = Field(
        description="The adapter version the prompt was built for (None: the base model's). A prompt built for "
                    "another version than the one served is answered with `AdapterChanged`, not scored.")


class LabelScores(BaseModel):
    logprobs: list[float] = Field(description="Log-probability of each label, in the order asked.")
    adapter: str | None = Field(description="The adapter that scored, or None for the base model.")
    adapter_version: str | None = None
    served_as: Literal["lora", "merged"] | None = Field(
        default=None, description="The adapter as LoRA in the main engine, or merged into the base weights.")
    prompt_tokens: int


class AdapterChanged(BaseModel):
    """The adapter version served is not the one the prompt was built for: build it again for `served`."""

    served: str | None


class Generate(LLMCall):
    max_tokens: int | None = Field(default=None, ge=1, description="None: the rest of the context.")
    json_schema: dict | None = Field(default=None, description="Constrain the output to JSON of this schema.")


class Generated(BaseModel):
    """Greedy text, whole or one streamed piece; a stream's last piece has `finished` and the token counts."""

    text: str
    model: str = Field(description="`<base>:<adapter>` when the adapter is served, else the base model.")
    adapter_version: str | None
    prompt_tokens: int
    completion_tokens: int
    finished: bool = False


class OpenAIAnswer(BaseModel):
    """The first item of an OpenAI route's answer from the LLM deployment (vLLM's serving layer): the JSON body,
    or None when server-sent events follow (each a `data: …` line, the last `data: [DONE]`)."""

    body: dict | None = None
