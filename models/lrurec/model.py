"""LRURec: linear recurrent units for sequential recommendation (Yue et al., arXiv 2311.02089).

Bottom-up: the LRU layer (complex diagonal recurrence, parallel scan), its block (LRU + feed-forward),
and the model (item embeddings shared with the output layer).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LRURecConfig:
    num_items: int  # item indices run 1..num_items; 0 is padding
    hidden: int = 64
    blocks: int = 2
    # 0.4 rather than LlamaRec's 0.2: on ML-100k (ml-latest-small) 0.2 overfits by epoch 20 and misses the
    # paper's figures; 0.4 reaches them (docs/benchmarks.md).
    dropout: float = 0.4
    attn_dropout: float = 0.4  # dropout on the LRU output, as the paper's "attention" dropout
    max_len: int = 200
    r_min: float = 0.8
    r_max: float = 0.99

    def to_dict(self) -> dict:
        return asdict(self)


def parallel_scan(bu: torch.Tensor, log_lamb: torch.Tensor) -> torch.Tensor:
    """h_t = λ h_{t-1} + bu_t for all t, in log2(L) steps instead of L.

    bu: (B, L, N) complex with L a power of two; log_lamb: (N,) complex, log λ = -ν + iθ.
    At step i the sequence is cut into blocks of 2^i; the second half of every block adds the
    last state of its first half, carried over by λ^1 … λ^(2^(i-1)). After the last step every
    position holds the full recurrence.
    """
    B, L, N = bu.shape
    steps = int(math.log2(L))
    assert 2**steps == L, "pad the sequence to a power of two"
    # λ^k for k = 1 … L/2: (L/2, N)
    powers = torch.exp(torch.arange(1, L // 2 + 1, device=bu.device).unsqueeze(-1) * log_lamb)
    h = bu
    for i in range(1, steps + 1):
        size, half = 2**i, 2 ** (i - 1)
        blocks = h.reshape(B, L // size, size, N)  # (B, L/size, size, N)
        first, second = blocks[:, :, :half], blocks[:, :, half:]
        second = second + powers[:half] * first[:, :, -1:]
        h = torch.cat([first, second], dim=2).reshape(B, L, N)
    return h


def sequential_scan(bu: torch.Tensor, log_lamb: torch.Tensor) -> torch.Tensor:
    """The same recurrence one step at a time: the reference the parallel scan is tested against."""
    lamb = torch.exp(log_lamb)
    h = torch.zeros_like(bu[:, 0])
    out = []
    for t in range(bu.shape[1]):
        h = lamb * h + bu[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


class LRU(nn.Module):
    """Diagonal complex recurrence λ = exp(-ν + iθ) with γ normalisation, complex in/out projections."""

    def __init__(self, d_model: int, dropout: float, r_min: float, r_max: float):
        super().__init__()
        n = 2 * d_model
        u1, u2 = torch.rand(n), torch.rand(n)
        # Radii |λ| = exp(-ν) uniform on the ring [r_min, r_max]; phases θ uniform on [0, 2π).
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = torch.log(u2 * 2 * math.pi)
        lamb_abs = torch.exp(-torch.exp(nu_log))
        gamma_log = torch.log(torch.sqrt(1 - lamb_abs**2))  # keeps the state's variance that of the input
        self.params_log = nn.Parameter(torch.stack([nu_log, theta_log, gamma_log]))  # (3, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "complex modules are a new feature"
            self.in_proj = nn.Linear(d_model, n).to(torch.cfloat)
            self.out_proj = nn.Linear(n, d_model).to(torch.cfloat)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def log_lambda(self) -> torch.Tensor:
        nu, theta, _ = torch.exp(self.params_log)
        return torch.complex(-nu, theta)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, scan=parallel_scan) -> torch.Tensor:
        # x: (B, L, d) real, mask: (B, L) bool with left padding
        gamma = torch.exp(self.params_log[2])
        bu = self.in_proj(x.to(torch.cfloat)) * gamma  # (B, L, 2d) complex
        bu = bu * mask.unsqueeze(-1)  # padding feeds nothing into the state
        h = scan(bu, self.log_lambda())
        return self.norm(self.dropout(self.out_proj(h).real) + x)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(d_model, 4 * d_model)
        self.w2 = nn.Linear(4 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.w2(self.dropout(F.gelu(self.w1(x)))))
        return self.norm(y + x)


class LRUBlock(nn.Module):
    def __init__(self, cfg: LRURecConfig):
        super().__init__()
        self.lru = LRU(cfg.hidden, cfg.attn_dropout, cfg.r_min, cfg.r_max)
        self.ffn = FeedForward(cfg.hidden, cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, scan=parallel_scan) -> torch.Tensor:
        return self.ffn(self.lru(x, mask, scan))


def seen_before(items: torch.Tensor, labelled: torch.Tensor, targets: torch.Tensor, n: int) -> torch.Tensor:
    """(P, n) bool: at each labelled position, the items up to and including it (and padding), the label not."""
    L = items.shape[1]
    upto = torch.ones(L, L, dtype=torch.bool, device=items.device).tril()  # upto[t, s]: position s is at or before t
    so_far = (items.unsqueeze(1) * upto)[labelled]  # (P, L) the items up to each position, 0 elsewhere
    seen = torch.zeros(len(so_far), n, dtype=torch.bool, device=items.device).scatter_(1, so_far, True)
    seen[:, 0] = True
    seen[torch.arange(len(targets), device=items.device), targets] = False
    return seen


class LRURec(nn.Module):
    def __init__(self, cfg: LRURecConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.num_items + 1, cfg.hidden, padding_idx=0)
        self.embed_norm = nn.LayerNorm(cfg.hidden)
        self.embed_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(LRUBlock(cfg) for _ in range(cfg.blocks))
        self.bias = nn.Parameter(torch.zeros(cfg.num_items + 1))
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self, std: float = 0.02) -> None:
        # Small truncated-normal weights (as BERT4Rec and LlamaRec do): with PyTorch's unit-variance
        # embeddings the shared output layer starts with logits far too large. LRU radii keep their ring init.
        for name, p in self.named_parameters():
            if "params_log" in name or "norm" in name:
                continue
            if name.endswith("bias"):
                p.zero_()
            elif p.is_complex():
                p.copy_(torch.complex(nn.init.trunc_normal_(torch.empty(p.shape), std=std, a=-2 * std, b=2 * std),
                                      nn.init.trunc_normal_(torch.empty(p.shape), std=std, a=-2 * std, b=2 * std)))
            else:
                nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)

    def hidden_states(self, items: torch.Tensor, scan=parallel_scan) -> torch.Tensor:
        """items: (B, L) item indices, left-padded with 0 -> (B, L, d)."""
        B, L = items.shape
        mask = items > 0
        x = self.embed_norm(self.embed_dropout(self.embedding(items)))
        padded = 2 ** math.ceil(math.log2(max(L, 2)))
        x = F.pad(x, (0, 0, padded - L, 0))  # (B, padded, d), extra padding on the left
        mask = F.pad(mask, (padded - L, 0))
        for block in self.blocks:
            x = block(x, mask, scan)
        return x[:, -L:]

    def forward(
        self, items: torch.Tensor, labels: torch.Tensor | None = None, exclude_seen: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores over all items (item embeddings are the output layer): at every position, or with
        `labels` (0 = none) at the labelled positions only, with their cross-entropy. With `exclude_seen`
        the softmax at each position leaves out the items already in the sequence (except the label)."""
        h = self.hidden_states(items)
        if labels is None:
            return h @ self.embedding.weight.T + self.bias, None  # (B, L, num_items + 1)
        # Training scores only the labelled positions: the output layer is most of the cost, and about
        # half of the positions of left-padded windows are padding.
        labelled = labels > 0
        logits = h[labelled] @ self.embedding.weight.T + self.bias  # (P, num_items + 1)
        targets = labels[labelled]
        if exclude_seen:
            logits = logits.masked_fill(seen_before(items, labelled, targets, logits.shape[1]), float("-inf"))
        return logits, F.cross_entropy(logits, targets)

    @torch.no_grad()
    def last_scores(self, items: torch.Tensor) -> torch.Tensor:
        """Scores for the next item after each sequence: (B, num_items + 1), padding scored -inf."""
        h = self.hidden_states(items)[:, -1]
        scores = h @ self.embedding.weight.T + self.bias
        scores[:, 0] = float("-inf")
        return scores
