"""Speculative decoding, greedy version (Leviathan et al. 2023; Chen et al. 2023).

A small *draft* model proposes ``lookahead`` tokens one by one; the large *target* model then scores all
of them in **one** forward pass, which costs about as much as a single decoding step when a step is
bound by reading the weights, not by arithmetic. The target keeps the longest run of proposals that
match its own greedy choice, then adds its own next token (a correction, or a bonus when all matched).
Every token kept is the target's greedy choice, so the output is the target's greedy decoding exactly;
only the number of sequential target passes changes. Rejected proposals are dropped from both caches.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from helpers.scratch.decoder import Cache, TinyDecoder, truncate
from helpers.validation import check_int


@dataclass
class Speculation:
    """The tokens (prompt included), and how the work went: target passes, draft proposals, accepted ones."""

    tokens: torch.Tensor   # (1, prompt + n_new)
    target_passes: int
    proposed: int
    accepted: int

    @property
    def acceptance_rate(self) -> float:
        """Fraction of the draft's proposals that the target kept."""
        return self.accepted / self.proposed


def feed(model: TinyDecoder, tokens: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, Cache]:
    """Run ``model`` on the tokens its cache does not hold yet; logits (1, fed, vocab) and the longer cache."""
    cached = 0 if cache is None else cache[0][0].shape[2]
    return model(tokens[:, cached:], cache)


@torch.no_grad()
def speculative_generate(target: TinyDecoder, draft: TinyDecoder, prompt: torch.Tensor, n_new: int,
                         lookahead: int = 4) -> Speculation:
    """Generate ``n_new`` tokens after ``prompt`` (1, length): the target's greedy tokens, drafted ahead."""
    check_int("lookahead", lookahead, 1, 64)
    if prompt.dim() != 2 or prompt.shape[0] != 1 or prompt.shape[1] < 1 or prompt.dtype != torch.long:
        raise ValueError(f"prompt must be a tensor of token ids of shape (1, length >= 1), got {tuple(prompt.shape)}")
    if draft.vocab != target.vocab:
        raise ValueError(f"draft must share the target's vocabulary of {target.vocab} tokens, got {draft.vocab}")
    check_int("n_new", n_new, 1, min(target.max_len, draft.max_len) - prompt.shape[1] - lookahead)
    tokens, target_cache, draft_cache = prompt, None, None
    passes = proposed = accepted = 0
    while tokens.shape[1] - prompt.shape[1] < n_new:
        length, proposal = tokens.shape[1], tokens
        for _ in range(lookahead):                                           # the draft guesses ahead
            logits, draft_cache = feed(draft, proposal, draft_cache)
            proposal = torch.cat([proposal, logits[:, -1:].argmax(-1)], dim=1)
        logits, target_cache = feed(target, proposal, target_cache)          # one pass checks every guess
        passes += 1
        choices = logits[:, -lookahead - 1:].argmax(-1)                      # (1, lookahead + 1)
        guesses = proposal[:, length:]                                       # (1, lookahead)
        matched = int((choices[0, :lookahead] == guesses[0]).long().cumprod(0).sum())
        tokens = torch.cat([tokens, guesses[:, :matched], choices[:, matched:matched + 1]], dim=1)
        proposed, accepted = proposed + lookahead, accepted + matched
        valid = length + matched                                             # positions both caches may keep
        target_cache = truncate(target_cache, valid)
        draft_cache = truncate(draft_cache, min(valid, draft_cache[0][0].shape[2]))
    return Speculation(tokens[:, :prompt.shape[1] + n_new], passes, proposed, accepted)
