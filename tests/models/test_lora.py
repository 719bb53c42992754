"""The LoRA training loop's loss: one example at a time, logits for the answer only, and the same mean over a
step's labelled tokens as Hugging Face's loss over the padded batch."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from models.lora import LoRAShape, LoRATrainConfig, Resume, answer_loss, fit, with_adapter
from tandem.settings import Settings


@pytest.fixture(scope="module")
def model(base_settings: Settings):
    base = AutoModelForCausalLM.from_pretrained(base_settings.llm_path, dtype=torch.float32)
    return with_adapter(base, LoRATrainConfig(), LoRAShape())


def examples(lengths: list[int], answer: int = 7) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(0)
    pairs = []
    for n in lengths:
        ids = torch.randint(0, 49_000, (n,), generator=g).tolist()
        pairs.append((ids, [-100] * (n - answer) + ids[n - answer:]))
    return pairs


def test_the_step_loss_is_the_padded_batch_loss(model) -> None:
    pairs = examples([50, 80, 64])
    tokens = sum(sum(1 for y in labels if y != -100) for _, labels in pairs)
    with torch.no_grad():
        ours = sum(float(answer_loss(model.eval(), ids, labels)) for ids, labels in pairs) / tokens
        width = max(len(ids) for ids, _ in pairs)
        ids = torch.zeros((len(pairs), width), dtype=torch.long)
        labels = torch.full((len(pairs), width), -100)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, (x, y) in enumerate(pairs):
            ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        padded = float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    assert ours == pytest.approx(padded, abs=1e-3)


def test_training_lowers_the_loss_and_an_unlabelled_example_is_refused(model) -> None:
    steps: list[dict] = []
    fitted = fit(model, examples([40] * 2), LoRATrainConfig(epochs=8, batch_size=2, lr=3e-3), "test",
                 progress=False, on_step=lambda **step: steps.append(step))
    assert fitted["steps"] == len(steps) == 8 and steps[-1]["step"] == steps[-1]["total"] == 8
    assert steps[-1]["loss"] < steps[0]["loss"] - 1, steps
    with pytest.raises(ValueError, match="labelled tokens"):
        answer_loss(model, [1, 2, 3], [-100, -100, -100])


def test_an_interrupted_training_resumes_where_its_checkpoint_left_off(base_settings: Settings, tmp_path) -> None:
    """Stopped after its third step, a run started again continues from the checkpoint of the second and ends with
    the weights of a run never stopped (no dropout, so every step is deterministic)."""
    cfg, shape, pairs = LoRATrainConfig(epochs=2, batch_size=2, lr=3e-3, checkpoint_steps=2), LoRAShape(dropout=0.0), \
        examples([30] * 4)

    def fresh():
        return with_adapter(AutoModelForCausalLM.from_pretrained(base_settings.llm_path, dtype=torch.float32), cfg,
                            shape)

    def adapter_weights(model) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    whole = fresh()
    fit(whole, pairs, cfg, "whole", progress=False)

    def stop_at_third(**step) -> None:
        if step["step"] == 3:
            raise KeyboardInterrupt

    resume = Resume(tmp_path / "resume")
    with pytest.raises(KeyboardInterrupt):
        fit(fresh(), pairs, cfg, "stopped", progress=False, on_step=stop_at_third, resume=resume)
    steps: list[dict] = []
    resumed = fresh()
    fitted = fit(resumed, pairs, cfg, "resumed", progress=False, on_step=lambda **s: steps.append(s), resume=resume)
    assert fitted["resumed_at"] == 2 and [s["step"] for s in steps] == [3, 4] and fitted["steps"] == 4
    expected, got = adapter_weights(whole), adapter_weights(resumed)
    assert all(torch.allclose(expected[n], got[n], atol=1e-6) for n in expected)
