"""LoRA fine-tuning of the LLM on (question, retrieved passages, answer) records: the `qa` adapter."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.lora import LoRAShape, LoRATrainConfig, fit, load_base, with_adapter
from models.qa.prompts import Context, QAPrompter


@dataclass(frozen=True)
class QAExample:
    question: str
    passages: list[Context]
    answer: str


def train_qa_adapter(base: str, examples: list[QAExample], output: Path, cfg: LoRATrainConfig,
                     shape: LoRAShape, max_context_tokens: int, device: str = "cpu", progress: bool = True,
                     on_step: Callable[..., None] | None = None) -> dict:
    """Fine-tune and save the adapter in `output` (peft's format, which vLLM loads) with `metrics.json`."""
    started = time.monotonic()
    tokenizer, model = load_base(base, device)
    prompter = QAPrompter(tokenizer, max_context_tokens)
    model = with_adapter(model, cfg, shape)
    pairs = [prompter.training_ids(e.question, e.passages, e.answer) for e in examples]
    fitted = fit(model, pairs, cfg, "qa adapter", progress, on_step)
    model.save_pretrained(output)
    metrics = {"examples": len(examples), **fitted, "mean_tokens": round(sum(len(p[0]) for p in pairs) / len(pairs)),
               "seconds": round(time.monotonic() - started, 1), "base": base, "train": cfg.model_dump(),
               "lora": shape.model_dump(), "max_context_tokens": max_context_tokens}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
