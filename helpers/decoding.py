"""A tiny causal decoder and greedy generation with and without a key/value cache.

Autoregressive decoding produces one token per forward pass.  Without a cache, every step
re-runs the whole prefix, so the attention scores of step ``t`` form a ``t x t`` matrix; with a
key/value (KV) cache each layer keeps the keys and values of earlier positions and the new
token attends to them with ``t`` scores.  :class:`TinyDecoder` counts the scores it computes so
the notebook can check ``n(n+1)/2`` against ``n(n+1)(2n+1)/6`` on real runs.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from helpers.validation import check_choice, check_int

MAX_VOCAB, MAX_D_MODEL, MAX_LAYERS, MAX_HEADS, MAX_LEN = 50_000, 1024, 24, 32, 4096
Cache = list[tuple[torch.Tensor, torch.Tensor]]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention written out (no fused kernel), with an optional KV cache."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.scores_computed = 0

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        total = k.shape[2]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)   # (b, heads, t, total)
        self.scores_computed += t * total
        if t > 1:  # new query i sits at absolute position total - t + i and may not see later keys
            mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=total - t)
            scores = scores.masked_fill(~mask, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d)), (k, v)


class DecoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, present = self.attn(self.ln1(x), past)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class TinyDecoder(nn.Module):
    """A GPT-style decoder: token + learned position embeddings, ``n_layers`` blocks, a linear head.

    ``forward(tokens, cache)`` returns ``(logits, new_cache)``; pass ``cache=None`` to process a
    whole prefix, or the previous cache to process only the new tokens.
    """

    def __init__(self, vocab: int = 64, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 max_len: int = 512) -> None:
        super().__init__()
        check_int("vocab", vocab, 2, MAX_VOCAB)
        check_int("d_model", d_model, 4, MAX_D_MODEL)
        check_int("n_heads", n_heads, 1, MAX_HEADS)
        check_int("n_layers", n_layers, 1, MAX_LAYERS)
        check_int("max_len", max_len, 2, MAX_LEN)
        if d_model % n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads={n_heads}, got {d_model}")
        self.vocab, self.d_model, self.n_heads, self.n_layers, self.max_len = vocab, d_model, n_heads, n_layers, max_len
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    @property
    def head_dim(self) -> int:
        """Size of one head's key (and value) vector."""
        return self.d_model // self.n_heads

    def forward(self, tokens: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, length), got {tuple(tokens.shape)}")
        start = 0 if cache is None else cache[0][0].shape[2]
        if start + tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length must be at most max_len={self.max_len}, got {start + tokens.shape[1]}")
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        new_cache: Cache = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if cache is None else cache[i])
            new_cache.append(present)
        return self.head(self.ln(x)), new_cache

    def reset_counts(self) -> None:
        """Zero every layer's count of attention scores computed."""
        for block in self.blocks:
            block.attn.scores_computed = 0

    def score_counts(self) -> list[int]:
        """Attention scores (query-key dot products) computed per layer, per sequence and head."""
        return [block.attn.scores_computed for block in self.blocks]


def tiny_decoder(vocab: int = 64, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 max_len: int = 512, seed: int = 0) -> TinyDecoder:
    """A randomly initialised :class:`TinyDecoder` in eval mode (weights from ``seed``)."""
    check_int("seed", seed, 0, 2**32 - 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TinyDecoder(vocab, d_model, n_heads, n_layers, max_len)
    return model.eval()


@dataclass
class Generation:
    """Greedy generation's output: all tokens (prompt included) and the logits of each new token."""

    tokens: torch.Tensor   # (batch, prompt + n_new)
    logits: torch.Tensor   # (batch, n_new, vocab)


@torch.no_grad()
def generate(model: TinyDecoder, prompt: torch.Tensor, n_new: int, use_cache: bool = True) -> Generation:
    """Greedy decoding of ``n_new`` tokens after ``prompt`` (shape ``(batch, length)`` or ``(length,)``).

    Without a cache each step runs the model on the whole sequence so far; with one, the prompt
    is processed once (prefill) and each later step feeds only the newest token.
    """
    if prompt.dim() == 1:
        prompt = prompt.unsqueeze(0)
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must have shape (batch, length>=1) or (length,), got {tuple(prompt.shape)}")
    if prompt.dtype != torch.long or prompt.min() < 0 or prompt.max() >= model.vocab:
        raise ValueError(f"prompt must hold integer token ids in [0, {model.vocab - 1}]")
    check_int("n_new", n_new, 1, model.max_len - prompt.shape[1] + 1)
    tokens, cache, step_logits = prompt, None, []
    for step in range(n_new):
        if use_cache:
            logits, cache = model(tokens if cache is None else tokens[:, -1:], cache)
        else:
            logits, _ = model(tokens)
        last = logits[:, -1]
        step_logits.append(last)
        tokens = torch.cat([tokens, last.argmax(-1, keepdim=True)], dim=1)
    return Generation(tokens, torch.stack(step_logits, dim=1))


def attention_score_counts(n: int) -> dict[str, int]:
    """Scores one layer (and head) computes to generate ``n`` positions from a 1-token prompt.

    Without a cache step ``t`` builds a full ``t x t`` score matrix: sum of squares
    ``n(n+1)(2n+1)/6``.  With a cache step ``t`` needs one row of ``t`` scores: ``n(n+1)/2``.
    """
    check_int("n", n, 1, 10_000_000)
    cached, uncached = n * (n + 1) // 2, n * (n + 1) * (2 * n + 1) // 6
    return {"cached": cached, "uncached": uncached}


def measured_score_counts(model: TinyDecoder, n: int, seed: int = 0) -> dict[str, int]:
    """Count layer 0's scores while generating ``n`` positions from one random token, both ways."""
    check_int("n", n, 1, model.max_len)
    prompt = torch.randint(0, model.vocab, (1, 1), generator=torch.Generator().manual_seed(seed))
    counts = {}
    for name, use_cache in (("cached", True), ("uncached", False)):
        model.reset_counts()
        generate(model, prompt.to(next(model.parameters()).device), n, use_cache=use_cache)
        counts[name] = model.score_counts()[0]
    model.reset_counts()
    return counts


def kv_cache_bytes(n_layers: int, n_heads: int, head_dim: int, seq_len: int, bytes_per_value: int = 4,
                   batch: int = 1) -> int:
    """Memory of a KV cache: ``2 (K and V) x layers x heads x head_dim x seq_len x bytes x batch``."""
    check_int("n_layers", n_layers, 1, 1_000)
    check_int("n_heads", n_heads, 1, 1_000)
    check_int("head_dim", head_dim, 1, 100_000)
    check_int("seq_len", seq_len, 0, 100_000_000)
    check_choice("bytes_per_value", bytes_per_value, (1, 2, 4, 8))
    check_int("batch", batch, 1, 1_000_000)
    return 2 * n_layers * n_heads * head_dim * seq_len * bytes_per_value * batch


def cache_nbytes(cache: Cache) -> int:
    """Bytes actually held by a cache's key and value tensors."""
    return sum(t.numel() * t.element_size() for pair in cache for t in pair)


@torch.no_grad()
def step_times(model: TinyDecoder, lengths: Sequence[int], min_run_time: float = 0.05, seed: int = 0,
               progress: Callable[[float], None] | None = None, rounds: int = 3) -> dict[str, list[float]]:
    """Seconds to produce the next token at each context length, with and without the cache.

    Uncached: one forward pass over all ``n`` tokens.  Cached: one forward pass of the newest
    token against a cache of ``n - 1`` positions.  Each is the median of repeats after warm-up
    (``torch.utils.benchmark``), the two timed in interleaved ``rounds`` so their ratio is fair.
    """
    from helpers.efficiency import time_many

    lengths = [check_int("length", n, 2, model.max_len) for n in lengths]
    if not lengths:
        raise ValueError("lengths must name at least one context length")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"length": list(lengths), "cached": [], "uncached": []}
    for i, n in enumerate(lengths):
        tokens = torch.randint(0, model.vocab, (1, n), generator=gen).to(device)
        _, cache = model(tokens[:, :-1])
        last = tokens[:, -1:]
        times = time_many({"uncached": lambda: model(tokens), "cached": lambda: model(last, cache)},
                          rounds, min_run_time)
        out["uncached"].append(times["uncached"])
        out["cached"].append(times["cached"])
        if progress is not None:
            progress((i + 1) / len(lengths))
    return out


def decoding_explorer(model: TinyDecoder, length: int = 128, progress: Callable[[float], None] | None = None):
    """Explorer: time per token up to context ``length``, with and without a KV cache."""
    from helpers.plotting import figure

    length = check_int("length", length, 8, model.max_len)
    lengths = sorted({max(2, int(round(length * f))) for f in (0.125, 0.25, 0.5, 0.75, 1.0)})
    times = step_times(model, lengths, min_run_time=0.01, progress=progress, rounds=3)
    fig, ax = figure(f"Time per token up to length {length}", "context length (tokens)", "time per token (ms)")
    ax.plot(lengths, [t * 1e3 for t in times["uncached"]], "o-", label="no cache (recompute prefix)")
    ax.plot(lengths, [t * 1e3 for t in times["cached"]], "o-", label="KV cache")
    ax.legend()
    return fig, {"ms per token, no cache": times["uncached"][-1] * 1e3,
                 "ms per token, KV cache": times["cached"][-1] * 1e3,
                 "speed-up": times["uncached"][-1] / times["cached"][-1],
                 "cache memory (KiB)": kv_cache_bytes(model.n_layers, model.n_heads, model.head_dim, length) / 1024}
