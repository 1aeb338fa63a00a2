"""Scaled dot-product attention and multi-head self-attention, written out.

Every query asks "which positions hold what I need?" by a dot product with every key; a softmax turns the
scores into weights that sum to one, and the answer is the weighted average of the values:

    attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V

``scaled_dot_product_attention`` takes the arguments of ``torch.nn.functional.scaled_dot_product_attention``
and returns the same result; ``MultiHeadSelfAttention`` matches ``torch.nn.MultiheadAttention``. Shapes
follow the usual names: B batch, T (or L) query positions, S key positions, d features, h heads.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from helpers.validation import check_int


def causal_mask(n_queries: int, n_keys: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The boolean mask of ``is_causal=True``: query i may look at keys 0..i (True means "may attend")."""
    check_int("n_queries", n_queries, 1, 1_000_000)
    check_int("n_keys", n_keys, 1, 1_000_000)
    keep = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    return keep.tril(diagonal=0)                                       # (L, S), True on and below the diagonal


def _check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attn_mask: torch.Tensor | None, is_causal: bool) -> None:
    if query.dim() < 2 or key.dim() < 2 or value.dim() < 2:
        raise ValueError(f"query, key and value must have shape (..., positions, features), got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must have the same feature size, got {query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key and value must have the same number of positions, got {key.shape[-2]} "
                         f"and {value.shape[-2]}")
    if attn_mask is not None and is_causal:
        raise ValueError("attn_mask must be None when is_causal=True (the causal mask is built for you)")


def attention_weights(query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None = None,
                      is_causal: bool = False) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + mask): how much each query position reads from each key position.

    ``attn_mask`` is boolean (True: may attend) or a float tensor added to the scores; it broadcasts to
    (..., L, S). A query that may attend to no key gets all-zero weights, as in PyTorch.
    """
    _check_inputs(query, key, key, attn_mask, is_causal)
    d = query.shape[-1]
    scores = query @ key.transpose(-2, -1) / math.sqrt(d)              # (..., L, S): one score per query-key pair
    if is_causal:
        attn_mask = causal_mask(query.shape[-2], key.shape[-2], device=query.device)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))        # forbidden pairs score -inf: weight 0
    elif attn_mask is not None:
        scores = scores + attn_mask                                    # additive mask (e.g. a relative bias)
    weights = torch.softmax(scores, dim=-1)                            # (..., L, S), each row sums to 1
    blocked = scores.isneginf().all(dim=-1, keepdim=True)              # (..., L, 1): queries with no key allowed
    return weights.masked_fill(blocked, 0.0)                           # their softmax is 0/0: read nothing


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """Query (..., L, d), key (..., S, d), value (..., S, dv) -> output (..., L, dv).

    The same arguments and result as ``torch.nn.functional.scaled_dot_product_attention`` (no dropout).
    The (L, S) weight matrix is built in full: memory grows as L x S, which is what fused kernels avoid.
    """
    _check_inputs(query, key, value, attn_mask, is_causal)
    weights = attention_weights(query, key, attn_mask, is_causal)     # (..., L, S)
    return weights @ value                                             # (..., L, dv): weighted average of values


class MultiHeadSelfAttention(nn.Module):
    """h heads of attention over one sequence, each in its own d/h-dimensional subspace.

    One linear layer makes queries, keys and values for all heads at once (as in nanoGPT); the heads'
    outputs are concatenated and mixed by an output projection. Weights line up with
    ``nn.MultiheadAttention``: ``qkv`` is its ``in_proj_weight``/``in_proj_bias``, ``out`` its ``out_proj``.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True) -> None:
        super().__init__()
        check_int("d_model", d_model, 1, 65_536)
        check_int("n_heads", n_heads, 1, d_model)
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, n_heads={n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                return_weights: bool = False):
        """x (B, T, d_model) -> (B, T, d_model); with ``return_weights`` also the weights (B, h, T, T)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (batch, positions, {self.d_model}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        head_dim = self.d_model // self.n_heads
        q, k, v = self.qkv(x).split(self.d_model, dim=-1)              # each (B, T, d_model)
        q = q.view(B, T, self.n_heads, head_dim).transpose(1, 2)       # (B, h, T, head_dim)
        k = k.view(B, T, self.n_heads, head_dim).transpose(1, 2)       # (B, h, T, head_dim)
        v = v.view(B, T, self.n_heads, head_dim).transpose(1, 2)       # (B, h, T, head_dim)
        weights = attention_weights(q, k, attn_mask, is_causal)        # (B, h, T, T)
        heads = weights @ v                                            # (B, h, T, head_dim)
        joined = heads.transpose(1, 2).reshape(B, T, self.d_model)     # (B, T, d_model): heads side by side
        out = self.out(joined)                                         # (B, T, d_model)
        return (out, weights) if return_weights else out
