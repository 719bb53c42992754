"""LoRA fine-tuning of the base LLM with peft, shared by the adapters (ranker, qa): base loading (QLoRA on
GPU, bf16 on CPU) and the training loop over (input ids, labels) pairs whose prompt positions are -100."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from models.int8 import to_int8

Pair = tuple[list[int], list[int]]


class LoRAShape(BaseModel):
    """The adapter's shape. Serving has to hold it (vLLM's max LoRA rank), so it is the deployment's to set, not a
    training run's."""

    r: int = Field(default=8, ge=1, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default=["q_proj", "k_proj", "v_proj", "o_proj"])


class LoRATrainConfig(BaseModel):
    epochs: int = Field(default=1, ge=1, le=100, description="Passes over the training examples.")
    batch_size: int = Field(default=4, ge=1, le=1024, description="Examples per optimizer step.")
    lr: float = Field(default=3e-4, gt=0, le=1, description="AdamW learning rate.")
    weight_decay: float = Field(default=0.0, ge=0)
    seed: int = Field(default=0, description="Adapter initialisation, example order and sampling.")
    checkpoint_steps: int = Field(default=16, ge=1, description="With a resume folder, the adapter and optimizer "
                                  "are saved there every this many steps, and a run started again continues there.")


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


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def with_adapter(model, cfg: LoRATrainConfig, shape: LoRAShape):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)  # the adapter's initial weights
    return get_peft_model(model, LoraConfig(
        task_type="CAUSAL_LM", r=shape.r, lora_alpha=shape.alpha, lora_dropout=shape.dropout,
        target_modules=shape.target_modules,
    ))


def answer_loss(model, ids: list[int], labels: list[int]) -> torch.Tensor:
    """Summed cross-entropy of one example's labelled tokens. The logits are computed for the
    answer only (a vocabulary-wide row per prompt token would cost more memory than the model), and one unpadded
    sequence lets attention take its fused path instead of materialising a masked score matrix per layer."""
    first = next((i for i, y in enumerate(labels) if y != -100), None)
    if first is None or first == 0:
        raise ValueError("an example needs prompt tokens followed by labelled tokens")
    logits = model(input_ids=torch.tensor([ids], device=model.device), logits_to_keep=len(ids) - first + 1).logits
    targets = torch.tensor(labels[first:], device=model.device)
    return torch.nn.functional.cross_entropy(logits[0, :-1].float(), targets, ignore_index=-100, reduction="sum")


class Resume:
    """Where an interrupted `fit` continues: the trainable weights, the optimizer and the losses so far, saved every
    `checkpoint_steps` in `folder` (written aside and renamed, so a crash leaves the previous one whole)."""

    def __init__(self, folder: Path):
        self.path = folder / "fit_state.pt"

    def load(self, model, optimizer) -> tuple[int, list[float]]:
        if not self.path.exists():
            return 0, []
        state = torch.load(self.path, map_location=model.device, weights_only=True)
        trainable = dict(_trainable(model))
        for name, value in state["weights"].items():
            trainable[name].data.copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"]), [float(x) for x in state["losses"]]

    def save(self, model, optimizer, step: int, losses: list[float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        torch.save({"weights": {n: p.detach() for n, p in _trainable(model)}, "optimizer": optimizer.state_dict(),
                    "step": step, "losses": losses}, partial)
        partial.replace(self.path)


def _trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def fit(model, pairs: list[Pair], cfg: LoRATrainConfig, name: str, progress: bool = True,
        on_step: Callable[..., None] | None = None, resume: Resume | None = None) -> dict:
    """Train the adapter's parameters; returns the step count and the mean loss of the first and last 20 steps.
    A step's examples go through one at a time and their gradients add up: the loss is the mean over the step's
    labelled tokens, as one padded batch would give, at the memory of one example and with no padding computed.
    With `resume`, a run interrupted after a checkpoint continues from it (the same examples in the same order)."""
    if not pairs:
        raise ValueError("no training examples")
    rng = random.Random(cfg.seed)
    optimizer = torch.optim.AdamW([p for _, p in _trainable(model)], lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = []
    for _ in range(cfg.epochs):
        order = list(pairs)
        rng.shuffle(order)
        batches += [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    done, losses = resume.load(model, optimizer) if resume else (0, [])
    bar = tqdm(total=len(batches), initial=done, desc=name, unit="step", disable=not progress)
    for step, batch in enumerate(batches[done:], start=done + 1):
        model.train()
        optimizer.zero_grad()
        tokens = sum(sum(1 for y in labels if y != -100) for _, labels in batch)
        total = 0.0
        for ids, labels in batch:
            loss = answer_loss(model, ids, labels)
            (loss / tokens).backward()
            total += loss.item()
        optimizer.step()
        losses.append(total / tokens)
        bar.update()
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        if on_step:
            on_step(unit="step", step=step, total=len(batches), loss=round(losses[-1], 4), resumed_at=done)
        if resume and (step % cfg.checkpoint_steps == 0 or step == len(batches)):
            resume.save(model, optimizer, step, losses)
    bar.close()
    return {"steps": len(batches), "resumed_at": done, "first_loss": round(sum(losses[:20]) / len(losses[:20]), 4),
            "last_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)}


def merged_copy(base: str, adapter: str | Path, folder: Path, int8: bool = False) -> Path:
    """The base model with the adapter's low-rank updates added into its weights, saved with the base's tokenizer
    as a plain HF folder: for engines whose LoRA path is slow (vLLM on CPU). Written once per adapter version;
    with `int8`, its linear layers as int8 weights with int8 activations (`models/int8.py`)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    # Written aside and renamed, so a crash leaves no folder that looks complete; per process, so replicas
    # merging the same version at once do not write into each other's files.
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    merged.save_pretrained(partial)
    AutoTokenizer.from_pretrained(base).save_pretrained(partial)
    if int8:
        to_int8(partial)
    try:
        partial.rename(folder)
    except OSError:  # another replica finished first: its copy is the same
        shutil.rmtree(partial, ignore_errors=True)
    return folder
