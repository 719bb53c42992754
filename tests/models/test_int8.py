"""A causal LM written as W8A8 int8 is read back by another reader of the format (transformers through
compressed-tensors) with the same outputs, within what 8 bits keep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from models.int8 import quantize_channels, to_int8


def test_each_row_keeps_its_largest_magnitude_and_half_a_step() -> None:
    weight = torch.randn(48, 32) * torch.logspace(-3, 1, 48).unsqueeze(1)  # rows of very different sizes
    q, scale = quantize_channels(weight)
    assert q.dtype == torch.int8 and scale.shape == (48, 1)
    assert torch.equal(q.abs().amax(dim=1), torch.full((48,), 127, dtype=torch.int8))
    assert torch.all((q.float() * scale - weight).abs() <= scale / 2 + 1e-7)


def test_a_model_written_as_int8_is_read_back_with_the_same_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.save_pretrained(tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size

    to_int8(tmp_path)

    tensors = load_file(tmp_path / "model.safetensors")
    linear = [n for n in tensors if n.endswith("proj.weight")]
    assert len(linear) == 2 * 7 and all(tensors[n].dtype == torch.int8 for n in linear)
    assert tensors["model.embed_tokens.weight"].dtype == torch.bfloat16  # embeddings and output layer stay
    assert (tmp_path / "model.safetensors").stat().st_size < size
    quantization = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert quantization["format"] == "int-quantized" and quantization["ignore"] == ["lm_head"]

    read_back = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    ids = torch.randint(0, 128, (2, 16))
    with torch.no_grad():
        expected, got = model(ids).logits.float(), read_back(ids).logits.float()
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_a_folder_without_linear_layers_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(4, 4)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no linear layers"):
        to_int8(tmp_path)
