"""Padding and masking in a sequence task: a toy tagger whose padding token is also its end-of-sequence token.

Real batches of sequences are padded to one length, and the loss must average over the real tokens
only. Here, as in many tokenizers, the padding id *equals* the end-of-sequence id, so a mask built as
``x != pad_id`` silently drops every end-of-sequence token too. The correct mask comes from the
sequence's length: every position up to and including the *first* end-of-sequence token.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from helpers.data import Splits
from helpers.validation import check_int

EOS = 0                  # end of sequence, and also the padding id
VOCABULARY = 16          # token ids 1..15 are ordinary tokens
TAGS = 8                 # tags 0..6 for ordinary tokens, tag 7 for the end of a sequence
END_TAG = TAGS - 1


def padded_sequences(n: int, max_length: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random token sequences of lengths 6..``max_length`` (end token included), padded with ``EOS``.

    The tag of an ordinary token is ``(token + previous token) mod 7``, so a tagger must look one step
    back; the end token's tag is ``END_TAG``; padding positions carry tag 0.
    """
    check_int("n", n, 1, 1_000_000)
    check_int("max_length", max_length, 6, 10_000)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    tokens = torch.randint(1, VOCABULARY, (n, max_length), generator=generator)       # (N, T)
    lengths = torch.randint(6, max_length + 1, (n, 1), generator=generator)           # (N, 1), with the end token
    position = torch.arange(max_length)                                               # (T,)
    x = torch.where(position < lengths - 1, tokens, EOS)                              # end token, then padding
    previous = functional.pad(x[:, :-1], (1, 0), value=EOS)                           # (N, T), x shifted right
    y = torch.where(position < lengths - 1, (x + previous) % 7, 0)
    y = torch.where(position == lengths - 1, END_TAG, y)
    return x, y


def real_tokens(x: torch.Tensor) -> torch.Tensor:
    """True for every position up to and including the first end token of each row (the sequence itself)."""
    ends = (x == EOS).long()                                      # (N, T)
    ends_before = ends.cumsum(1) - ends                           # end tokens strictly before each position
    return ends_before == 0


def masked_cross_entropy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions where ``mask`` is True: ``sum(mask * loss) / sum(mask)``."""
    per_token = functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")  # (N*T,)
    mask = mask.flatten().float()
    return (per_token * mask).sum() / mask.sum()


class CausalTagger(nn.Module):
    """Embeds each token, joins it with the previous token's embedding, and tags it with a small MLP.

    It looks only backwards, so appending padding can never change the outputs at real positions.
    """

    def __init__(self, dim: int = 16, hidden: int = 48) -> None:
        super().__init__()
        check_int("dim", dim, 1, 4096)
        check_int("hidden", hidden, 1, 4096)
        self.embed = nn.Embedding(VOCABULARY, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, TAGS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.embed(x)                                   # (N, T, dim)
        previous = functional.pad(current[:, :-1], (0, 0, 1, 0))  # (N, T, dim), zeros before the first token
        return self.mlp(torch.cat([current, previous], dim=-1))   # (N, T, TAGS)


def tagging_splits(n_train: int = 2000, n_val: int = 500, n_test: int = 500, max_length: int = 16,
                   seed: int = 0, device: torch.device | str = "cpu") -> Splits:
    """Train, validation and test sequences of the tagging task (tokens in ``x``, tags in ``y``)."""
    check_int("n_train", n_train, 1, 1_000_000)
    check_int("n_val", n_val, 1, 1_000_000)
    check_int("n_test", n_test, 1, 1_000_000)
    x, y = padded_sequences(n_train + n_val + n_test, max_length, seed)
    x, y = x.to(device), y.to(device)
    cut_val, cut_test = n_train, n_train + n_val
    return Splits("tagging", x[:cut_val], y[:cut_val], x[cut_val:cut_test], y[cut_val:cut_test],
                  x[cut_test:], y[cut_test:], TAGS)
