"""A tiny GPT-style causal decoder with a key/value cache, written out like nanoGPT.

Autoregressive decoding produces one token per forward pass. Without a cache, each step re-runs the
whole prefix through every layer. With a key/value (KV) cache, each layer keeps the keys and values of
the positions it has already seen, and a step feeds only the new token: its query attends to the cached
keys. Grouped-query attention (Ainslie et al. 2023) lets several query heads share one key/value head,
which shrinks the cache by ``n_heads / n_kv_heads``; ``n_kv_heads = 1`` is multi-query attention.
Each attention layer counts the attention scores that causal attention needs (query-key pairs with the
key at or before the query), so a notebook can check the counts of cached and uncached decoding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from helpers.validation import check_choice, check_int

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, each (B, kv_heads, T, head_dim)
MAX_VOCAB, MAX_D_MODEL, MAX_LAYERS, MAX_HEADS, MAX_LEN = 50_000, 1024, 24, 32, 4096


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (no fused kernel) with an optional KV cache and shared KV heads."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * n_kv_heads * self.head_dim)
        self.out = nn.Linear(d_model, d_model)
        self.scores_needed = 0

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, new, d_model = x.shape                                        # x: (B, new, d_model)
        q = self.query(x).view(batch, new, self.n_heads, self.head_dim).transpose(1, 2)  # (B, heads, new, hd)
        kv = self.key_value(x).view(batch, new, 2, self.n_kv_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4)                                     # each (B, kv_heads, new, hd)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, kv_heads, T, hd)
        total = k.shape[2]                                                   # T = cached + new positions
        group = self.n_heads // self.n_kv_heads                              # query heads per KV head
        keys, values = (k, v) if group == 1 else (k.repeat_interleave(group, 1), v.repeat_interleave(group, 1))
        scores = q @ keys.transpose(-2, -1) / math.sqrt(self.head_dim)       # (B, heads, new, T)
        if new > 1:                                                          # new query i sits at T - new + i
            visible = torch.ones(new, total, dtype=torch.bool, device=x.device).tril(diagonal=total - new)
            scores = scores.masked_fill(~visible, float("-inf"))             # it may not see later keys
        self.scores_needed += new * (total - new) + new * (new + 1) // 2     # key at or before each query
        y = torch.softmax(scores, dim=-1) @ values                           # (B, heads, new, hd)
        return self.out(y.transpose(1, 2).reshape(batch, new, d_model)), (k, v)


class DecoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads, n_kv_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, present = self.attention(self.norm1(x), past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), present


class TinyDecoder(nn.Module):
    """Token and learned position embeddings, ``n_layers`` blocks, a final norm and a linear head.

    ``forward(tokens, cache)`` returns ``(logits, cache)``: pass ``cache=None`` to run a whole prefix,
    or the previous cache to run only the new tokens, which then sit at the positions after it.
    """

    def __init__(self, vocab: int = 64, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 max_len: int = 512, n_kv_heads: int | None = None) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        check_int("vocab", vocab, 2, MAX_VOCAB)
        check_int("d_model", d_model, 4, MAX_D_MODEL)
        check_int("n_heads", n_heads, 1, MAX_HEADS)
        check_choice("n_kv_heads", n_kv_heads, [k for k in range(1, n_heads + 1) if n_heads % k == 0])
        check_int("n_layers", n_layers, 1, MAX_LAYERS)
        check_int("max_len", max_len, 2, MAX_LEN)
        if d_model % n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads={n_heads}, got {d_model}")
        self.vocab, self.d_model, self.n_heads, self.n_kv_heads = vocab, d_model, n_heads, n_kv_heads
        self.n_layers, self.max_len, self.head_dim = n_layers, max_len, d_model // n_heads
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads, n_kv_heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, length), got {tuple(tokens.shape)}")
        start = 0 if cache is None else cache[0][0].shape[2]                 # positions already cached
        if start + tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length must be at most max_len={self.max_len}, got {start + tokens.shape[1]}")
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)  # (B, new, d_model)
        new_cache: Cache = []
        for layer, block in enumerate(self.blocks):
            x, present = block(x, None if cache is None else cache[layer])
            new_cache.append(present)
        return self.head(self.norm(x)), new_cache                            # logits (B, new, vocab)

    def scores_needed(self) -> int:
        """Attention scores counted by the first layer since the last :meth:`reset_counts` (per head)."""
        return self.blocks[0].attention.scores_needed

    def reset_counts(self) -> None:
        """Zero every layer's score count."""
        for block in self.blocks:
            block.attention.scores_needed = 0


def tiny_decoder(seed: int = 0, **sizes: int) -> TinyDecoder:
    """A :class:`TinyDecoder` with weights drawn from ``seed``, in eval mode (``sizes`` as its arguments)."""
    check_int("seed", seed, 0, 2**32 - 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TinyDecoder(**sizes)
    return model.eval()


def truncate(cache: Cache, length: int) -> Cache:
    """The cache of the first ``length`` positions only (what stays valid when later tokens change)."""
    check_int("length", length, 0, cache[0][0].shape[2])
    return [(keys[:, :, :length], values[:, :, :length]) for keys, values in cache]


@dataclass
class Generation:
    """Greedy generation's output: every token (prompt included) and the logits of each new token."""

    tokens: torch.Tensor   # (B, prompt + n_new)
    logits: torch.Tensor   # (B, n_new, vocab)


@torch.no_grad()
def generate(model: TinyDecoder, prompt: torch.Tensor, n_new: int, use_cache: bool = True) -> Generation:
    """Greedy decoding of ``n_new`` tokens after ``prompt`` (B, length): always the most likely next token.

    Without a cache each step runs the model on the whole sequence so far; with one, the prompt runs once
    (the prefill) and every later step feeds only the newest token.
    """
    if prompt.dim() != 2 or prompt.shape[1] < 1 or prompt.dtype != torch.long:
        raise ValueError(f"prompt must be token ids of shape (batch, length >= 1), got {tuple(prompt.shape)}")
    if prompt.min() < 0 or prompt.max() >= model.vocab:
        raise ValueError(f"prompt must hold token ids in [0, {model.vocab - 1}]")
    check_int("n_new", n_new, 1, model.max_len - prompt.shape[1] + 1)
    tokens, cache, step_logits = prompt, None, []
    for _ in range(n_new):
        if use_cache:
            logits, cache = model(tokens if cache is None else tokens[:, -1:], cache)  # (B, new, vocab)
        else:
            logits, _ = model(tokens)                                                   # (B, T, vocab)
        step_logits.append(logits[:, -1])
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return Generation(tokens, torch.stack(step_logits, dim=1))


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, bytes_per_value: int = 4,
                   batch: int = 1) -> int:
    """Memory of a KV cache: 2 (keys and values) x layers x KV heads x head_dim x positions x bytes x batch."""
    check_int("n_layers", n_layers, 1, 1_000)
    check_int("n_kv_heads", n_kv_heads, 1, 1_000)
    check_int("head_dim", head_dim, 1, 100_000)
    check_int("seq_len", seq_len, 0, 100_000_000)
    check_choice("bytes_per_value", bytes_per_value, (1, 2, 4, 8))
    check_int("batch", batch, 1, 1_000_000)
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value * batch


def cache_nbytes(cache: Cache) -> int:
    """Bytes actually held by a cache's key and value tensors."""
    return sum(tensor.numel() * tensor.element_size() for pair in cache for tensor in pair)
