"""LoRA fine-tuning of the LLM ranker with peft, on LlamaRec-style examples; evaluated on LRURec's top-k."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field
from tqdm.auto import tqdm

from models.lora import LoRAShape, LoRATrainConfig, fit, load_base, pad_id_of, with_adapter
from models.verbalizer.data import EvalCase, Example
from models.verbalizer.prompts import Verbalizer, VerbalizerConfig
from models.verbalizer.scoring import candidate_metrics, label_logprobs


class RankerTrainConfig(LoRATrainConfig):
    eval_batch_size: int = Field(default=8, ge=1, description="Prompts per forward pass when evaluating.")


def ranker_orders(
    model, verbalizer: Verbalizer, cases: list[EvalCase], titles: dict[int, str], pad_id: int, batch_size: int,
    progress: bool = False,
) -> list[list[int]]:
    """The ranker's order of each case's candidates (empty for a case without candidates)."""
    model.eval()
    orders: dict[int, list[int]] = {}
    scorable = [i for i, c in enumerate(cases) if c.candidates]
    for start in tqdm(range(0, len(scorable), batch_size), desc="ranker eval", disable=not progress):
        batch = scorable[start:start + batch_size]
        prompts = [verbalizer.prompt_ids([titles[h] for h in cases[i].history],
                                         [titles[x] for x in cases[i].candidates]) for i in batch]
        width = max(len(cases[i].candidates) for i in batch)
        scores = label_logprobs(model, prompts, verbalizer.label_ids[:width], pad_id)
        orders |= {i: verbalizer.order(lp[: len(cases[i].candidates)]) for i, lp in zip(batch, scores, strict=True)}
    return [orders.get(i, []) for i in range(len(cases))]


def evaluate_ranker(
    model, verbalizer: Verbalizer, cases: list[EvalCase], titles: dict[int, str], pad_id: int, batch_size: int,
    progress: bool = False,
) -> dict:
    """Test metrics of LRURec's own order and of the ranker's order over the same candidates."""
    ranked = ranker_orders(model, verbalizer, cases, titles, pad_id, batch_size, progress)
    identity = [list(range(len(c.candidates))) for c in cases]
    return {"lrurec": candidate_metrics(cases, identity), "ranker": candidate_metrics(cases, ranked),
            "users": len(cases)}


def train_ranker(
    base: str,
    examples: list[Example],
    cases: list[EvalCase],
    titles: dict[int, str],
    output: Path,
    cfg: RankerTrainConfig,
    shape: LoRAShape,
    verbalizer_cfg: VerbalizerConfig,
    device: str = "cpu",
    progress: bool = True,
    on_step: Callable[..., None] | None = None,
) -> dict:
    """Fine-tune a LoRA adapter, save it in `output` (peft's format, which vLLM loads) with `metrics.json`."""
    started = time.monotonic()
    tokenizer, model = load_base(base, device)
    pad_id = pad_id_of(tokenizer)
    verbalizer = Verbalizer(tokenizer, verbalizer_cfg)
    model = with_adapter(model, cfg, shape)
    pairs = [verbalizer.training_ids([titles[h] for h in e.history], [titles[c] for c in e.candidates], e.answer)
             for e in examples]
    fitted = fit(model, pairs, cfg, "ranker", progress, on_step)
    model.save_pretrained(output)
    metrics = {
        "test": evaluate_ranker(model, verbalizer, cases, titles, pad_id, cfg.eval_batch_size, progress),
        "examples": len(examples),
        **fitted,
        "seconds": round(time.monotonic() - started, 1),
        "base": base,
        "train": cfg.model_dump(), "lora": shape.model_dump(),
        "verbalizer": verbalizer_cfg.model_dump(),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
