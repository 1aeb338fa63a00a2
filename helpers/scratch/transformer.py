"""A transformer block: attention mixes positions, an MLP transforms each position, residuals carry the rest.

The pre-norm block of GPT-2 and most models since (Xiong et al. 2020):

    x = x + Attention(LayerNorm(x))      # tokens exchange information
    x = x + MLP(LayerNorm(x))            # each token is transformed on its own

Each sub-layer learns a *change* added to its input, so the identity path runs unbroken from the first
block to the last: the reason deep stacks of these blocks train (see the residual experiment in 04).
Matches ``torch.nn.TransformerEncoderLayer(norm_first=True, dropout=0, activation="gelu", batch_first=True)``.
"""
from __future__ import annotations

import torch
from torch import nn

from helpers.scratch.attention import MultiHeadSelfAttention
from helpers.validation import check_int


class TransformerBlock(nn.Module):
    """LayerNorm -> multi-head self-attention -> add; LayerNorm -> MLP (GELU) -> add."""

    def __init__(self, d_model: int, n_heads: int, d_hidden: int | None = None) -> None:
        super().__init__()
        d_hidden = 4 * d_model if d_hidden is None else d_hidden
        check_int("d_hidden", d_hidden, 1, 262_144)
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadSelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_model))

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model)."""
        x = x + self.attention(self.norm1(x), is_causal=is_causal)   # (B, T, d_model): mix across positions
        x = x + self.mlp(self.norm2(x))                               # (B, T, d_model): per position
        return x
