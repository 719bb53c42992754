"""LoRA fine-tuning of the LLM ranker with peft, on LlamaRec-style examples; evaluated on LRURec's top-k."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from models.verbalizer.data import EvalCase, Example
from models.verbalizer.prompts import Verbalizer, VerbalizerConfig
from models.verbalizer.scoring import candidate_metrics, label_logprobs


@dataclass
class RankerTrainConfig:
    epochs: int = 1
    batch_size: int = 4
    lr: float = 3e-4
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    eval_batch_size: int = 8
    seed: int = 0


def load_base(path: str, device: str):
    """The base LLM for training: 4-bit on GPU where bitsandbytes is present (QLoRA), bf16 otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs: dict = {"dtype": torch.bfloat16}
    quantized = False
    if device == "cuda":
        kwargs["device_map"] = {"": 0}
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
            quantized = True
        except ImportError:
            pass
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return tokenizer, model


def _batches(examples: list, size: int, rng: random.Random) -> list[list]:
    order = list(examples)
    rng.shuffle(order)
    return [order[i:i + size] for i in range(0, len(order), size)]


def _collate(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (x, y) in enumerate(pairs):
        ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def evaluate_ranker(
    model, verbalizer: Verbalizer, cases: list[EvalCase], titles: dict[int, str], pad_id: int, batch_size: int,
    progress: bool = False,
) -> dict:
    """Test metrics of LRURec's own order and of the ranker's order over the same candidates."""
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
    identity = [list(range(len(c.candidates))) for c in cases]
    ranked = [orders.get(i, []) for i in range(len(cases))]
    return {"lrurec": candidate_metrics(cases, identity), "ranker": candidate_metrics(cases, ranked),
            "users": len(cases)}


def train_ranker(
    base: str,
    examples: list[Example],
    cases: list[EvalCase],
    titles: dict[int, str],
    output: Path,
    cfg: RankerTrainConfig,
    verbalizer_cfg: VerbalizerConfig,
    device: str = "cpu",
    progress: bool = True,
    on_step: Callable[..., None] | None = None,
) -> dict:
    """Fine-tune a LoRA adapter, save it in `output` (peft's format, which vLLM loads) with `metrics.json`."""
    from peft import LoraConfig, get_peft_model

    started = time.monotonic()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tokenizer, model = load_base(base, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    verbalizer = Verbalizer(tokenizer, verbalizer_cfg)
    model = get_peft_model(model, LoraConfig(
        task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
    ))
    pairs = [verbalizer.training_ids([titles[h] for h in e.history], [titles[c] for c in e.candidates], e.answer)
             for e in examples]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = [b for _ in range(cfg.epochs) for b in _batches(pairs, cfg.batch_size, rng)]
    bar = tqdm(batches, desc="ranker", unit="step", disable=not progress)
    losses = []
    for step, batch in enumerate(bar, start=1):
        model.train()
        inputs = {k: v.to(model.device) for k, v in _collate(batch, pad_id).items()}
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        if on_step:
            on_step(unit="step", step=step, total=len(batches), loss=round(losses[-1], 4))
    model.save_pretrained(output)
    metrics = {
        "test": evaluate_ranker(model, verbalizer, cases, titles, pad_id, cfg.eval_batch_size, progress),
        "examples": len(examples),
        "steps": len(batches),
        "first_loss": round(sum(losses[:20]) / max(1, len(losses[:20])), 4),
        "last_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
        "seconds": round(time.monotonic() - started, 1),
        "base": base,
        "train": asdict(cfg),
        "verbalizer": verbalizer_cfg.model_dump(),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
