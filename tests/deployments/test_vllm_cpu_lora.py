"""The grouped LoRA products give what vLLM-CPU's per-token ops give, for one adapter and for a mixed batch."""

from __future__ import annotations

import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops

from deployments.servers import vllm_cpu_lora

ORIGINAL = {name: getattr(lora_ops, name) for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")}


@pytest.mark.parametrize("indices", [[1] * 7, [0, 2, 2, 1, 0, 1, -1]])
def test_grouped_products_equal_the_per_token_ones(indices: list[int]) -> None:
    torch.manual_seed(0)
    tokens, hidden, rank, adapters = len(indices), 64, 8, 3
    index = torch.tensor(indices)
    x = torch.randn(tokens, hidden, dtype=torch.bfloat16)
    a = torch.randn(adapters, 1, rank, hidden, dtype=torch.bfloat16)  # shrink: hidden -> rank
    b = torch.randn(adapters, 1, hidden, rank, dtype=torch.bfloat16)  # expand: rank -> hidden

    def run(ops: dict) -> list[torch.Tensor]:
        shrunk = torch.zeros(tokens, rank, dtype=torch.float32)
        ops["bgmv_shrink"](x, a, shrunk, index, 0.5)
        expanded = torch.ones(tokens, hidden, dtype=torch.bfloat16)
        ops["bgmv_expand"](shrunk, b, expanded, index, True)
        sliced = torch.zeros(tokens, 3 * hidden, dtype=torch.bfloat16)
        ops["bgmv_expand_slice"](shrunk, b, sliced, index, hidden, hidden, False)
        return [shrunk, expanded, sliced]

    grouped = run({name: getattr(vllm_cpu_lora, name) for name in ORIGINAL})
    for mine, theirs in zip(grouped, run(ORIGINAL), strict=True):
        torch.testing.assert_close(mine.float(), theirs.float(), rtol=2e-2, atol=2e-2)
