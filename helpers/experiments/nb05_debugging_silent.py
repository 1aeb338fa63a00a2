"""Notebook 05, two silent preprocessing bugs: a broadcast regression target and truncated sequences.

Neither raises an error. A ``(N,)`` target against ``(N, 1)`` predictions makes the squared error
an ``(N, N)`` table, so the model learns the mean; truncating sequences to a fixed length throws away
whatever came after it, which only a metric by length shows.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from helpers import plotting
from helpers.validation import check_choice, check_int


def regression_data(n: int = 1200, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(n, features)`` and a smooth non-linear target ``(n,)`` with a little noise."""
    check_int("n", n, 20, 1_000_000)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    x = torch.randn(n, check_int("features", features, 1, 1000), generator=generator)
    direction = torch.randn(features, generator=generator) / features ** 0.5
    return x, torch.sin(2 * x @ direction) + 0.1 * torch.randn(n, generator=generator)


@dataclass
class Broadcast:
    """Validation R² and what the loss reports for a perfect prediction, with the target as a column or flat."""

    r2: float
    perfect_loss: float
    warning: str | None


def fit_regression(target: str = "column", seed: int = 0, steps: int = 300) -> Broadcast:
    """Fit a small MLP by full-batch Adam with ``mse_loss(prediction (N, 1), target)``.

    ``target="column"`` passes ``y[:, None]`` (N, 1), the healthy shape; ``"flat"`` passes ``y`` (N,),
    which broadcasts against (N, 1) into an (N, N) table of every prediction minus every target.
    """
    check_choice("target", target, ("column", "flat"))
    check_int("steps", steps, 1, 100_000)
    x, y = regression_data(seed=seed)
    x_train, y_train, x_val, y_val = x[:900], y[:900], x[900:], y[900:]
    shaped = (lambda values: values[:, None]) if target == "column" else (lambda values: values)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            optimizer.zero_grad()
            functional.mse_loss(model(x_train), shaped(y_train)).backward()
            optimizer.step()
        perfect = functional.mse_loss(y_val[:, None], shaped(y_val)).item()
    with torch.no_grad():
        residual = model(x_val)[:, 0] - y_val
    r2 = 1 - (residual.pow(2).mean() / y_val.var(unbiased=False)).item()
    return Broadcast(r2, perfect, str(caught[0].message) if caught else None)


KEYWORDS = 4          # token ids 1..4 are the keywords; the label is which one the sequence contains
VOCABULARY = 32


def keyword_sequences(n: int = 3000, min_length: int = 8, max_length: int = 64,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token sequences (padded with 0) holding one keyword at a uniformly random position; the label is the keyword."""
    check_int("n", n, 10, 1_000_000)
    check_int("min_length", min_length, 1, max_length)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    lengths = torch.randint(min_length, max_length + 1, (n,), generator=generator)       # (N,)
    tokens = torch.randint(KEYWORDS + 1, VOCABULARY, (n, max_length), generator=generator)
    tokens[torch.arange(max_length) >= lengths[:, None]] = 0                              # padding
    labels = torch.randint(0, KEYWORDS, (n,), generator=generator)
    where = (torch.rand(n, generator=generator) * lengths).long()                         # keyword position
    tokens[torch.arange(n), where] = labels + 1
    return tokens, lengths, labels


def bag_of_words(tokens: torch.Tensor, limit: int) -> torch.Tensor:
    """Token counts of the first ``limit`` positions (what a tokenizer truncating at ``limit`` keeps)."""
    counts = functional.one_hot(tokens[:, :limit], VOCABULARY).sum(1).float()            # (N, VOCABULARY)
    counts[:, 0] = 0                                                                      # padding carries nothing
    return counts


def truncation(limit: int, seed: int = 0, steps: int = 200, edges: tuple[int, ...] = (8, 32, 48, 65)) -> dict:
    """Train a bag-of-words classifier on sequences truncated at ``limit``; return accuracy by length bucket."""
    check_int("limit", limit, 1, 10_000)
    tokens, lengths, labels = keyword_sequences(seed=seed)
    features = bag_of_words(tokens, limit)
    train, held = slice(0, 2000), slice(2000, None)
    torch.manual_seed(seed)
    model = nn.Linear(VOCABULARY, KEYWORDS)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(check_int("steps", steps, 1, 100_000)):
        optimizer.zero_grad()
        functional.cross_entropy(model(features[train]), labels[train]).backward()
        optimizer.step()
    with torch.no_grad():
        correct = (model(features[held]).argmax(-1) == labels[held]).float()
    held_lengths = lengths[held]
    buckets = {f"{low}-{high - 1}": correct[(held_lengths >= low) & (held_lengths < high)].mean().item()
               for low, high in zip(edges[:-1], edges[1:])}
    return {"limit": limit, "truncated share": (lengths > limit).float().mean().item(), "by length": buckets}


def truncation_figure(results: list[dict]):
    """Accuracy by sequence length for each truncation limit."""
    fig, ax = plotting.figure("Truncation: accuracy by sequence length", "sequence length (tokens)",
                              "accuracy (fraction correct)")
    for result in results:
        buckets = result["by length"]
        cut = result["truncated share"]
        ax.plot(list(buckets), list(buckets.values()), marker="o",
                label=f"truncated at {result['limit']} tokens ({cut:.0%} of sequences cut)" if cut > 0
                else f"limit {result['limit']} tokens (nothing cut)")
    ax.axhline(1 / KEYWORDS, color="black", ls=":", lw=1, label="chance")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
