"""Notebook 04, section 2: associative recall, the task that shows why attention won.

A sequence holds k key-value pairs and then a query key; the answer is the value stored with that key.
Each pair is one token (its key's embedding plus its value's embedding), the query is a last token with a
blank value. One attention layer can solve it in a single step: the query's dot product with each key picks
the pair, the weighted average reads its value. A recurrent network must squeeze every pair into one hidden
state as it streams past, before it knows which key will be asked for.

The distance variant (one pair, then blank tokens, then the query) asks a recurrent network only to *carry*
one value across many steps, which it does, given a suitable learning rate.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import config, metrics, models, plotting
from helpers import progress as cell_progress
from helpers.progress import Report
from helpers.scratch.attention import MultiHeadSelfAttention
from helpers.validation import check_choice, check_float, check_int

N_KEYS, N_VALUES = 32, 8          # key vocabulary; values (chance accuracy 1/8)
BLANK_KEY, BLANK_VALUE = N_KEYS, N_VALUES   # the extra embedding rows: "no key here", "value unknown"
MODELS = ("attention", "GRU")
EVAL_SEQUENCES = 1000


@dataclass
class Batch:
    """Recall sequences: keys and values (B, positions), the query key (B,) and the answer (B,)."""

    keys: torch.Tensor
    values: torch.Tensor
    query: torch.Tensor
    answer: torch.Tensor
    matching: torch.Tensor       # (B,) position of the pair the query asks for


def make_batch(size: int, pairs: int, generator: torch.Generator, distance: int = 0,
               device: torch.device | str = "cpu") -> Batch:
    """``size`` sequences of ``pairs`` distinct keys with random values, then ``distance`` blank tokens."""
    check_int("size", size, 1, 1_000_000)
    check_int("pairs", pairs, 1, N_KEYS)
    check_int("distance", distance, 0, 4096)
    keys = torch.rand(size, N_KEYS, generator=generator).argsort(dim=-1)[:, :pairs]   # (B, k) distinct keys
    values = torch.randint(0, N_VALUES, (size, pairs), generator=generator)           # (B, k)
    matching = torch.randint(0, pairs, (size,), generator=generator)                  # (B,)
    rows = torch.arange(size)
    query, answer = keys[rows, matching], values[rows, matching]
    keys = torch.cat([keys, torch.full((size, distance), BLANK_KEY)], dim=1)          # (B, k + distance)
    values = torch.cat([values, torch.full((size, distance), BLANK_VALUE)], dim=1)
    return Batch(*(t.to(device) for t in (keys, values, query, answer, matching)))


class PairEmbedding(nn.Module):
    """Each pair becomes one token, key embedding + value embedding; the query token comes last."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.key = nn.Embedding(N_KEYS + 1, width)
        self.value = nn.Embedding(N_VALUES + 1, width)

    def forward(self, batch: Batch) -> torch.Tensor:
        pairs = self.key(batch.keys) + self.value(batch.values)                      # (B, k, width)
        query = self.key(batch.query) + self.value(torch.full_like(batch.query, BLANK_VALUE))  # (B, width)
        return torch.cat([pairs, query[:, None]], dim=1)                              # (B, k + 1, width)


class AttentionRecall(nn.Module):
    """Embedding -> one head of self-attention (no positions: the pairs form a set) -> read the query token."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = PairEmbedding(width)
        self.attention = MultiHeadSelfAttention(width, 1)
        self.head = nn.Linear(width, N_VALUES)

    def forward(self, batch: Batch, return_weights: bool = False):
        mixed, weights = self.attention(self.embed(batch), return_weights=True)       # (B, k+1, w), (B, 1, k+1, k+1)
        logits = self.head(mixed[:, -1])                                              # (B, values): the query token
        return (logits, weights[:, 0, -1]) if return_weights else logits             # weights of the query (B, k+1)


class GRURecall(nn.Module):
    """Embedding -> GRU over the tokens in order -> read the last hidden state."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = PairEmbedding(width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, N_VALUES)

    def forward(self, batch: Batch) -> torch.Tensor:
        states, _ = self.gru(self.embed(batch))                                       # (B, k+1, width)
        return self.head(states[:, -1])


@dataclass
class RecallRun:
    """Held-out accuracy after each checkpoint of one training run (``steps[i]`` steps done)."""

    model_name: str
    pairs: int
    lr: float
    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    model: nn.Module | None = None

    def at(self, step: int) -> float:
        """Held-out accuracy after ``step`` training steps (a checkpoint)."""
        if step not in self.steps:
            raise ValueError(f"step must be one of the checkpoints {self.steps}, got {step}")
        return self.accuracy[self.steps.index(step)]

    def final(self) -> float:
        return self.accuracy[-1]


def held_out(pairs: int, distance: int, device: torch.device | str) -> Batch:
    """The same fixed evaluation sequences for every run with these settings."""
    return make_batch(EVAL_SEQUENCES, pairs, torch.Generator().manual_seed(10_000 + pairs), distance, device)


@torch.no_grad()
def accuracy(model: nn.Module, batch: Batch) -> float:
    return metrics.accuracy(model(batch), batch.answer)


def train(model_name: str, pairs: int, steps: int, lr: float, width: int = 32, seed: int = 0,
          distance: int = 0, batch_size: int = 128, checkpoints: int = 10, device: torch.device | str = "cpu",
          progress: Report | None = None) -> RecallRun:
    """Train one model with Adam on fresh sequences every step; evaluate at ``checkpoints`` even intervals."""
    check_choice("model_name", model_name, MODELS)
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 1.0, lo_open=True)
    check_int("width", width, 1, 1024)
    check_int("checkpoints", checkpoints, 1, steps)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = (AttentionRecall if model_name == "attention" else GRURecall)(width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    evaluation = held_out(pairs, distance, device)
    run = RecallRun(model_name, pairs, lr, [0], [accuracy(model, evaluation)], model)
    marks = set(np.linspace(0, steps, checkpoints + 1).round().astype(int)[1:].tolist())
    for step in cell_progress.steps(steps, progress):
        batch = make_batch(batch_size, pairs, generator, distance, device)
        loss = functional.cross_entropy(model(batch), batch.answer)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step + 1 in marks:
            run.steps.append(step + 1)
            run.accuracy.append(accuracy(model, evaluation))
    return run


def recall_suite(pairs: int, steps: int, more_steps: int = 4, wide: int = 128, seed: int = 0,
                 device: torch.device | str = "cpu", checkpoints: int = 10) -> dict[str, RecallRun]:
    """The runs of the recall experiment, each once, with one cell progress bar per run.

    One pair (both models: the control that the GRU can learn the format); ``pairs`` pairs for attention,
    for the GRU at two learning rates (the higher one trained ``more_steps`` times longer, with a checkpoint
    at ``steps``), and for a GRU ``wide`` units wide (the capacity control). Held-out accuracy is measured
    ``checkpoints`` times per ``steps``.
    """
    check_int("more_steps", more_steps, 1, 100)
    check_int("checkpoints", checkpoints, 1, steps)
    jobs = {"attention, 1 pair": ("attention", 1, steps, 1e-2, 32),
            "GRU, 1 pair": ("GRU", 1, steps, 1e-2, 32),
            f"attention, {pairs} pairs": ("attention", pairs, steps, 1e-2, 32),
            f"GRU, {pairs} pairs, lr 0.003": ("GRU", pairs, steps, 3e-3, 32),
            f"GRU, {pairs} pairs, lr 0.01, {more_steps}x steps": ("GRU", pairs, more_steps * steps, 1e-2, 32),
            f"GRU, {pairs} pairs, width {wide}": ("GRU", pairs, steps, 3e-3, wide)}
    runs = {}
    for name, (model_name, n_pairs, n_steps, lr, width) in jobs.items():
        runs[name] = train(model_name, n_pairs, n_steps, lr, width, seed=seed, device=device,
                           checkpoints=checkpoints * n_steps // steps, progress=cell_progress.cell_report(name))
    return runs


@torch.no_grad()
def weight_on_match(run: RecallRun, device: torch.device | str = "cpu") -> float:
    """Mean attention weight the query token puts on the pair holding its key (uniform: 1 / (pairs + 1))."""
    if run.model_name != "attention":
        raise ValueError(f"run must be an attention run, got {run.model_name!r}")
    batch = held_out(run.pairs, 0, device)
    _, weights = run.model(batch, return_weights=True)                                # (B, k + 1)
    return float(weights[torch.arange(len(weights)), batch.matching].mean())


def key_blind_accuracy(pairs: int) -> float:
    """Expected held-out accuracy of a rule that ignores every key and answers the most frequent value among
    the ``pairs`` values (ties split evenly): what a model can score by counting values without binding keys."""
    batch = held_out(check_int("pairs", pairs, 1, N_KEYS), 0, "cpu")
    counts = functional.one_hot(batch.values, N_VALUES).sum(dim=1)                   # (B, values)
    modal = counts == counts.max(dim=-1, keepdim=True).values                         # (B, values) tied winners
    share = modal.float() / modal.sum(dim=-1, keepdim=True)                           # chance of answering each
    return float(share[torch.arange(len(batch.answer)), batch.answer].mean())


def plot_runs(runs: dict[str, RecallRun], title: str, ax=None, key_blind: float | None = None):
    """Held-out accuracy against training steps for named runs, with chance (and a key-blind rule) marked."""
    fig, ax = plotting.figure(title, "training steps", "held-out accuracy") if ax is None else (ax.figure, ax)
    for name, run in runs.items():
        ax.plot(run.steps, run.accuracy, "o-", ms=3, label=name)
    ax.axhline(1 / N_VALUES, color="grey", ls=":", lw=1, label=f"chance (1/{N_VALUES})")
    if key_blind is not None:
        ax.axhline(key_blind, color="black", ls="--", lw=1, label="key-blind rule: most frequent value")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


@torch.no_grad()
def plot_weights(run: RecallRun, examples: int = 3, device: torch.device | str = "cpu"):
    """The query token's attention weights over the sequence for a few held-out examples."""
    batch = held_out(run.pairs, 0, device)
    _, weights = run.model(batch, return_weights=True)
    fig, axes = plotting.figure("Where the query looks: attention weights of the last token (orange: the pair "
                                "holding the query's key; dotted: uniform weight)",
                                "position in the sequence (pairs, then the query)", "attention weight",
                                ncols=examples, figsize=(3.6 * examples, 3.2))
    for index, ax in enumerate(axes):
        positions = np.arange(run.pairs + 1)
        colours = [plotting.PALETTE[1] if p == int(batch.matching[index]) else plotting.PALETTE[0] for p in positions]
        ax.bar(positions, weights[index].cpu().numpy(), color=colours)
        ax.axhline(1 / (run.pairs + 1), color="black", ls=":", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title(f"example {index + 1}", fontsize=9)
    return fig


def recall_explorer(pairs: int = 8, steps: int = 200, width: int = 32, progress: Report | None = None):
    """Train attention and a GRU (the better of two learning rates) on recall with ``pairs`` pairs."""
    check_int("pairs", pairs, 1, N_KEYS)
    check_int("steps", steps, 20, 300)
    check_int("width", width, 8, 64)
    jobs = [("attention", 1e-2), ("GRU", 3e-3), ("GRU", 1e-2)]
    device = config.current().device
    runs = {f"{name}, lr {lr:g}": train(name, pairs, steps, lr, width, seed=0, device=device,
                                        progress=cell_progress.share(progress, i / len(jobs), (i + 1) / len(jobs)))
            for i, (name, lr) in enumerate(jobs)}
    key_blind = key_blind_accuracy(pairs)
    fig = plot_runs(runs, f"Associative recall with {pairs} pair{'s' if pairs > 1 else ''}", key_blind=key_blind)
    gru_best = max(run.final() for run in runs.values() if run.model_name == "GRU")
    numbers = {"attention accuracy": runs["attention, lr 0.01"].final(), "best GRU accuracy": gru_best,
               "key-blind rule (most frequent value)": key_blind, "chance": 1 / N_VALUES}
    if max(run.final() for run in runs.values()) < 2 / N_VALUES:
        numbers["note"] = "Neither model beat twice chance in this many steps: give them more steps."
    return fig, numbers


def gap_table(runs: dict[str, RecallRun], names: Sequence[str]) -> list[dict]:
    """Rows for a table: run name, learning rate, steps trained, parameters, final held-out accuracy."""
    return [{"run": name, "learning rate": runs[name].lr, "steps": runs[name].steps[-1],
             "parameters": models.count_parameters(runs[name].model), "held-out accuracy": runs[name].final()}
            for name in names]
