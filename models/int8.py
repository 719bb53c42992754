"""A causal LM's linear layers as int8 weights with int8 activations (W8A8), written in the compressed-tensors
format that vLLM loads: for CPUs whose int8 dot products (AVX-512 VNNI) outrun their bf16 ones.

Weights are quantized per output channel, symmetric; activations per token, symmetric and dynamic (their scale is
computed at run time), so no calibration data is needed. Embeddings and the output layer stay in bf16.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# What the linear layers of the decoder blocks are called in HF causal LMs (Llama, Gemma, Qwen and the like).
LINEAR_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def quantization_config() -> dict:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme

    scheme = QuantizationScheme(
        targets=["Linear"],
        weights=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel"),
        input_activations=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token", dynamic=True),
    )
    config = QuantizationConfig(config_groups={"group_0": scheme}, format="int-quantized", ignore=["lm_head"],
                                quantization_status="compressed")
    return config.model_dump(exclude_none=True)


def quantize_channels(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 weight [out, in] and its float32 scale [out, 1]: each row divided by its largest magnitude / 127."""
    w = weight.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=torch.finfo(torch.float32).tiny)
    return (w / scale).round().clamp(-127, 127).to(torch.int8), scale


def to_int8(folder: Path) -> Path:
    """Rewrite a bf16 HF folder's decoder linear weights (`save_pretrained`'s safetensors, one file or shards) as
    W8A8 in place."""
    index_file = folder / "model.safetensors.index.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else None
    quantized_any = False
    for weights_file in sorted(folder.glob("*.safetensors")):
        tensors: dict[str, torch.Tensor] = {}
        for name, tensor in load_file(weights_file).items():
            module = name.removesuffix(".weight")
            if name.endswith(".weight") and module.endswith(LINEAR_SUFFIXES):
                tensors[name], tensors[f"{module}.weight_scale"] = quantize_channels(tensor)
                if index is not None:
                    index["weight_map"][f"{module}.weight_scale"] = weights_file.name
                quantized_any = True
            else:
                tensors[name] = tensor
        save_file(tensors, weights_file, metadata={"format": "pt"})
    if not quantized_any:
        raise ValueError(f"no linear layers named {', '.join(LINEAR_SUFFIXES)} in {folder}")
    if index is not None:
        index_file.write_text(json.dumps(index, indent=2))
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["quantization_config"] = quantization_config()
    config_file.write_text(json.dumps(config, indent=2))
    return folder
