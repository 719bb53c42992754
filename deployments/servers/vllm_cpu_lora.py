"""A vLLM plugin (entry point `vllm.general_plugins`, loaded in every vLLM process): LoRA on CPU as one matrix
product per adapter instead of one per token.

vLLM-CPU's PyTorch LoRA ops (`vllm.lora.ops.torch_ops`, used by `PunicaWrapperCPU`) gather the adapter's weights
once per token (`weights[indices]`, a (tokens, out, rank) copy) and multiply token by token (`einsum`): a
1,000-token prefill copies the adapter a thousand times, so LoRA requests get slower, not faster, as vLLM batches
them (docs/benchmarks.md). The same products grouped by adapter are ordinary matrix products, and a batch of
requests for one adapter is one product. Results are the same up to the order of floating-point sums.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("tandem.llm")


def _lora_products(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """Row t of the result is inputs[t] @ weights[indices[t]].T, computed once per adapter in `indices`."""
    if weights.dim() == 4:
        weights = weights.squeeze(1)  # (adapters, out, in)
    inputs = inputs.to(dtype)
    first = indices[:1]
    if indices.numel() == 0 or bool((indices == first).all()):
        index = int(first[0]) if indices.numel() else 0
        return inputs @ weights[index].to(dtype).T
    out = inputs.new_empty(inputs.shape[0], weights.shape[1])
    for index in indices.unique().tolist():
        rows = indices == index
        out[rows] = inputs[rows] @ weights[index].to(dtype).T
    return out


def bgmv_shrink(inputs: torch.Tensor, lora_a_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, scaling: float = 1.0) -> None:
    outputs = _lora_products(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, add_inputs: bool = True) -> None:
    outputs = _lora_products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common = min(outputs.shape[1], output_tensor.shape[1])  # adapter and model may pad differently
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                      lora_indices_tensor: torch.Tensor, slice_offset: int, slice_size: int,
                      add_inputs: bool = True) -> None:
    outputs = _lora_products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs


def register() -> None:
    """Replace the per-token ops where vLLM-CPU looks them up (its sgmv_* ops call the module's bgmv_*)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (lora_ops, punica_cpu):
        module.bgmv_shrink, module.bgmv_expand, module.bgmv_expand_slice = bgmv_shrink, bgmv_expand, bgmv_expand_slice
    log.debug("grouped LoRA products installed for vLLM-CPU")
