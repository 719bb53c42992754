"""LoRA fine-tuning of the LLM ranker with peft, on LlamaRec-style examples; evaluated on LRURec's top-k, alone and
fused with LRURec's scores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field
from tqdm.auto import tqdm

from models.lora import LoRAShape, LoRATrainConfig, Resume, fit, load_base, pad_id_of, with_adapter
from models.verbalizer.data import EvalCase, Example
from models.verbalizer.fusion import fused_scores, order_by
from models.verbalizer.fusion_weight import fit_weight
from models.verbalizer.prompts import Verbalizer, VerbalizerConfig
from models.verbalizer.scoring import candidate_metrics, label_logprobs


class RankerTrainConfig(LoRATrainConfig):
    eval_batch_size: int = Field(default=8, ge=1, description="Prompts per forward pass when evaluating.")


def ranker_logprobs(
    model, verbalizer: Verbalizer, cases: list[EvalCase], titles: dict[int, str], pad_id: int, batch_size: int,
    progress: bool = False,
) -> list[list[float]]:
    """The log-probability of each case's candidate labels (empty for a case without candidates)."""
    model.eval()
    found: dict[int, list[float]] = {}
    scorable = [i for i, c in enumerate(cases) if c.candidates]
    for start in tqdm(range(0, len(scorable), batch_size), desc="ranker eval", disable=not progress):
        batch = scorable[start:start + batch_size]
        prompts = [verbalizer.prompt_ids([titles[h] for h in cases[i].history],
                                         [titles[x] for x in cases[i].candidates]) for i in batch]
        width = max(len(cases[i].candidates) for i in batch)
        scores = label_logprobs(model, prompts, verbalizer.label_ids[:width], pad_id)
        found |= {i: lp[: len(cases[i].candidates)] for i, lp in zip(batch, scores, strict=True)}
    return [found.get(i, []) for i in range(len(cases))]


def target_positions(cases: list[EvalCase]) -> list[int | None]:
    """Where each case's next item is among its candidates (None: LRURec missed it)."""
    return [c.candidates.index(c.target) if c.target in c.candidates else None for c in cases]


def evaluate_fusion(val: list[EvalCase], val_llm: list[list[float]], test: list[EvalCase],
                    test_llm: list[list[float]]) -> dict:
    """The LLM's weight beside LRURec fitted on the validation users (`fit_weight`), and on the test users the
    metrics of LRURec's order, the LLM's order and the fused order at that weight, all over the same candidates."""
    fit = fit_weight([c.scores for c in val], val_llm, target_positions(val))

    def orders(cases: list[EvalCase], llm: list[list[float]], weight: float | None) -> list[list[int]]:
        return [(order_by(fused_scores(c.scores, lp, weight)) if weight is not None else order_by(lp)) if lp else []
                for c, lp in zip(cases, llm, strict=True)]

    val_ndcg = {name: candidate_metrics(val, orders(val, val_llm, w))["NDCG@10"]
                for name, w in (("lrurec", 0.0), ("llm", None), ("fused", fit.weight))}
    return {
        "test": {"lrurec": candidate_metrics(test, orders(test, test_llm, 0.0)),
                 "llm": candidate_metrics(test, orders(test, test_llm, None)),
                 "fused": candidate_metrics(test, orders(test, test_llm, fit.weight)), "users": len(test)},
        "fusion": {**fit.model_dump(), "val_users": len(val), "val_ndcg_10": val_ndcg},
    }


def train_ranker(
    base: str,
    examples: list[Example],
    val: list[EvalCase],
    test: list[EvalCase],
    titles: dict[int, str],
    output: Path,
    cfg: RankerTrainConfig,
    shape: LoRAShape,
    verbalizer_cfg: VerbalizerConfig,
    device: str = "cpu",
    progress: bool = True,
    on_step: Callable[..., None] | None = None,
    resume: Resume | None = None,
) -> dict:
    """Fine-tune a LoRA adapter, save it in `output` (peft's format, which vLLM loads) with `metrics.json`: the
    fusion weight fitted on the `val` cases and the test metrics (`evaluate_fusion`)."""
    started = time.monotonic()
    tokenizer, model = load_base(base, device)
    pad_id = pad_id_of(tokenizer)
    verbalizer = Verbalizer(tokenizer, verbalizer_cfg)
    model = with_adapter(model, cfg, shape)
    pairs = [verbalizer.training_ids([titles[h] for h in e.history], [titles[c] for c in e.candidates], e.answer)
             for e in examples]
    fitted = fit(model, pairs, cfg, "ranker", progress, on_step, resume)
    model.save_pretrained(output)
    val_llm, test_llm = (ranker_logprobs(model, verbalizer, cases, titles, pad_id, cfg.eval_batch_size, progress)
                         for cases in (val, test))
    metrics = {
        **evaluate_fusion(val, val_llm, test, test_llm),
        "examples": len(examples),
        **fitted,
        "seconds": round(time.monotonic() - started, 1),
        "base": base,
        "train": cfg.model_dump(), "lora": shape.model_dump(),
        "verbalizer": verbalizer_cfg.model_dump(),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
