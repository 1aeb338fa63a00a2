"""Where one forward pass of the decoder spends its arithmetic and its memory traffic.

A pass over ``new`` tokens that attend to ``cached + new`` positions multiplies matrices in three places
(2 FLOPs per multiply-add; norms, softmax and GELU are left out):

* projections, per token and layer: query and output ``d x d`` each, keys and values ``d x 2 kv_width``,
  the MLP ``d x 4d`` twice; their cost grows with the number of tokens *run*;
* attention, per layer: scores ``q k^T`` and the weighted sum of values, ``2 x 2 x heads x new x T x
  head_dim`` (our kernel computes the masked scores too; a causal kernel skips about half of them when
  ``new = T``);
* the output head: ``d x vocab`` per token.

Memory traffic has a floor too: every weight is read once per pass whatever the batch, and the cached
keys and values are read once per sequence. Arithmetic intensity (FLOPs per byte) is their ratio.
"""
from __future__ import annotations

from helpers.scratch.decoder import TinyDecoder, kv_cache_bytes
from helpers.validation import check_choice, check_int


def forward_flops(model: TinyDecoder, new: int, cached: int = 0, batch: int = 1) -> dict[str, int]:
    """Matrix-multiply FLOPs of one forward pass over ``new`` tokens per sequence after ``cached`` positions."""
    check_int("new", new, 1, model.max_len)
    check_int("cached", cached, 0, model.max_len - new)
    check_int("batch", batch, 1, 1_000_000)
    d, total, kv_width = model.d_model, cached + new, model.n_kv_heads * model.head_dim
    per_token_and_layer = 2 * (d * d + d * 2 * kv_width + d * d + 2 * d * 4 * d)  # query, keys+values, out, MLP
    return {"projections": batch * new * model.n_layers * per_token_and_layer,
            "attention": batch * model.n_layers * 2 * 2 * model.n_heads * new * total * model.head_dim,
            "head": batch * new * 2 * d * model.vocab}


def forward_bytes(model: TinyDecoder, new: int, cached: int = 0, batch: int = 1, bytes_per_value: int = 4
                  ) -> dict[str, int]:
    """The least memory traffic of that pass: each weight read once, each cached key and value read once and
    each new one written once (activations are left out, so this is a floor)."""
    check_int("new", new, 1, model.max_len)
    check_int("cached", cached, 0, model.max_len - new)
    check_int("batch", batch, 1, 1_000_000)
    check_choice("bytes_per_value", bytes_per_value, (1, 2, 4, 8))
    weights = sum(p.numel() for name, p in model.named_parameters() if "embedding" not in name)
    cache = kv_cache_bytes(model.n_layers, model.n_kv_heads, model.head_dim, cached + new, bytes_per_value, batch)
    return {"weights": weights * bytes_per_value, "kv cache": cache}


def arithmetic_intensity(model: TinyDecoder, new: int, cached: int = 0, batch: int = 1) -> float:
    """FLOPs per byte of memory traffic (float32) of that pass."""
    flops, traffic = forward_flops(model, new, cached, batch), forward_bytes(model, new, cached, batch)
    return sum(flops.values()) / sum(traffic.values())


def generation_score_counts(n: int) -> dict[str, int]:
    """Attention scores one layer and head needs to generate ``n`` positions from a one-token prompt.

    Uncached, step ``t`` reruns ``t`` tokens: ``t (t + 1) / 2`` causal scores, ``n (n+1) (n+2) / 6`` in all.
    Cached, step ``t`` scores one query against ``t`` keys: ``n (n + 1) / 2`` in all.
    """
    check_int("n", n, 1, 10_000_000)
    return {"cached": n * (n + 1) // 2, "uncached": n * (n + 1) * (n + 2) // 6}
