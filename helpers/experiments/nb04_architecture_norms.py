"""Notebook 04, section 5: LayerNorm vs BatchNorm, checked exactly and then trained at small and large batches.

BatchNorm standardises each feature over the examples of a batch; LayerNorm standardises each example over its
features. The exact checks show what that means for one example; the training runs show what it costs when
batches are tiny, and what leaving BatchNorm in training mode at inference does to predictions.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import data, exercises, models, plotting
from helpers import progress as cell_progress
from helpers.progress import Report
from helpers.train import sampled_steps
from helpers.validation import check_choice, check_float, check_int

NORMS = {"none": None, "batch": "batch", "layer": "layer"}
LABEL = {"none": "no normalization", "batch": "BatchNorm", "layer": "LayerNorm"}


# ---- exact checks on one layer -----------------------------------------------------------------------------

def companion_effect(norm: str, training: bool = True, batch: int = 8, features: int = 16, seed: int = 0) -> float:
    """Largest change in example 0's normalised output when the other examples of its batch are replaced."""
    check_choice("norm", norm, ("batch", "layer"))
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    layer = nn.BatchNorm1d(features) if norm == "batch" else nn.LayerNorm(features)
    layer.train(training)
    x = torch.randn(batch, features, generator=generator)
    other = torch.cat([x[:1], 3 * torch.randn(batch - 1, features, generator=generator) + 1])
    with torch.no_grad():
        return float((layer(x)[0] - layer(other)[0]).abs().max())


def batch_of_one_error() -> str:
    """The error BatchNorm raises for a batch of one example in training mode ('' if it raises none)."""
    layer = nn.BatchNorm1d(4).train()
    try:
        layer(torch.randn(1, 4))
    except ValueError as error:
        return str(error)
    return ""


def batch_of_two(features: int = 16, seed: int = 0) -> dict[str, float]:
    """BatchNorm (training mode, float64) on two examples: the outputs are negatives of each other, near +-1."""
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    layer = nn.BatchNorm1d(features, dtype=torch.float64).train()
    x = torch.randn(2, features, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
    return {"largest |y0 + y1|": float((y[0] + y[1]).abs().max()),
            "median |y|": float(y.abs().median()), "smallest |y|": float(y.abs().min())}


# ---- training at a batch size -------------------------------------------------------------------------------

@dataclass
class NormRun:
    """A trained network and what it scores on the test set."""

    norm: str
    batch_size: int
    steps: int
    test_acc: float
    train_eval_agreement: float | None
    model: nn.Module
    train_mode_acc: float | None = None          # BatchNorm left in training mode, i.i.d. test batches
    sorted_train_mode_acc: float | None = None   # ... test batches sorted by class (mostly one class each)


def build(norm: str, width: int = 64, depth: int = 3) -> models.MLP:
    """An MLP whose hidden blocks are norm -> linear -> ReLU (the first block has no norm)."""
    check_choice("norm", norm, NORMS)
    return models.mlp(40, 10, width=width, depth=depth, norm=NORMS[norm])


@torch.no_grad()
def train_mode_predictions(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes with BatchNorm left in training mode, each batch of ``batch_size`` normalised by its
    own statistics (a last incomplete batch is dropped). The model is not changed."""
    check_int("batch_size", batch_size, 2, len(x))
    left_on = copy.deepcopy(model).train()
    usable = len(x) - len(x) % batch_size
    return torch.cat([left_on(x[i:i + batch_size]).argmax(-1) for i in range(0, usable, batch_size)])


@torch.no_grad()
def train_mode_agreement(model: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    """Fraction of examples whose predicted class is the same with BatchNorm left in training mode (statistics
    of test batches of ``batch_size``) as in eval mode (running averages). The model is not changed."""
    evaluated = model.eval()(x).argmax(-1)
    predicted = train_mode_predictions(model, x, batch_size)
    return float((predicted == evaluated[:len(predicted)]).float().mean())


@torch.no_grad()
def train_mode_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                        sort_by_class: bool = False) -> float:
    """Test accuracy with BatchNorm left in training mode: each test batch of ``batch_size`` is normalised by
    its own statistics. ``sort_by_class`` orders the test set by label first, so a batch holds mostly one
    class (as when requests arrive in correlated bursts). The model is not changed."""
    if sort_by_class:
        order = y.argsort(stable=True)
        x, y = x[order], y[order]
    predicted = train_mode_predictions(model, x, batch_size)
    return float((predicted == y[:len(predicted)]).float().mean())


def train(norm: str, split: data.Splits, batch_size: int, steps: int, lr: float = 1e-3, seed: int = 0,
          progress: Report | None = None) -> NormRun:
    """Adam at ``batch_size`` for ``steps`` steps; test accuracy in eval mode, and for BatchNorm the
    agreement between training-mode and eval-mode predictions and the training-mode accuracy on i.i.d. and
    on class-sorted test batches."""
    check_int("batch_size", batch_size, 2, 4096)
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 1.0, lo_open=True)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = build(norm).to(split.x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    sampled_steps(model, optimizer, split, steps, batch_size, generator, progress)
    with torch.no_grad():
        test_acc = float((model.eval()(split.x_test).argmax(-1) == split.y_test).float().mean())
    if norm != "batch":
        return NormRun(norm, batch_size, steps, test_acc, None, model)
    return NormRun(norm, batch_size, steps, test_acc, train_mode_agreement(model, split.x_test, batch_size), model,
                   train_mode_accuracy(model, split.x_test, split.y_test, batch_size),
                   train_mode_accuracy(model, split.x_test, split.y_test, batch_size, sort_by_class=True))


def run_batches(steps: dict[int, int], split: data.Splits, seed: int = 0,
                progress: Report | None = None) -> dict[tuple[str, int], NormRun]:
    """Every normalization at every batch size in ``steps`` (batch size -> training steps), same data and seed."""
    jobs = [(norm, size) for size in steps for norm in NORMS]
    runs = {}
    for index, (norm, size) in enumerate(jobs):
        report = (cell_progress.share(progress, index / len(jobs), (index + 1) / len(jobs)) if progress is not None
                  else cell_progress.cell_report(f"{LABEL[norm]}, batch {size}"))
        runs[(norm, size)] = train(norm, split, size, steps[size], seed=seed, progress=report)
    return runs


def plot_batches(runs: dict[tuple[str, int], NormRun], title: str = "Test accuracy by batch size"):
    """Grouped bars per batch size: test accuracy per normalization (left); BatchNorm's accuracy in eval mode
    and left in training mode on i.i.d. and class-sorted test batches (right). Each batch size has its own
    training budget (steps), so compare bars within a group, not across."""
    fig, (left, right) = plotting.figure(title, "batch size (training steps)", "test accuracy (fraction correct)",
                                         ncols=2, figsize=(11, 3.9))
    right.set_title("BatchNorm at inference", fontsize=10)
    sizes = sorted({size for _, size in runs})
    positions = np.arange(len(sizes))
    for i, norm in enumerate(NORMS):
        bars = left.bar(positions + (i - 1) * 0.27, [runs[(norm, s)].test_acc for s in sizes], 0.27,
                        color=plotting.PALETTE[i], label=LABEL[norm])
        left.bar_label(bars, fmt="%.2f", fontsize=7)
    modes = {"BatchNorm, eval mode": "test_acc", "BatchNorm left in train mode, i.i.d. batches": "train_mode_acc",
             "... class-sorted batches": "sorted_train_mode_acc"}
    for i, (label, field) in enumerate(modes.items()):
        bars = right.bar(positions + (i - 1) * 0.27, [getattr(runs[("batch", s)], field) for s in sizes], 0.27,
                         color=plotting.PALETTE[1], alpha=(1.0, 0.6, 0.3)[i], hatch=(None, None, "//")[i],
                         label=label)
        right.bar_label(bars, fmt="%.2f", fontsize=7)
    for ax in (left, right):
        ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance" if ax is left else None)
        ax.set_xticks(positions, [f"{s} ({runs[('batch', s)].steps})" for s in sizes])
        ax.set_ylim(0, 1.05)
    handles, labels = (sum(pair, []) for pair in zip(left.get_legend_handles_labels(),
                                                      right.get_legend_handles_labels()))
    fig.legend(handles, labels, loc="outside right center")
    return fig


def batch_explorer(batch_size: int = 8, steps: int = 300, split: data.Splits | None = None,
                   progress: Report | None = None):
    """Train the three networks at one batch size; compare test accuracy and BatchNorm's train/eval agreement."""
    check_int("batch_size", batch_size, 2, 256)
    check_int("steps", steps, 10, 1000)
    split = split if split is not None else data.mnist1d(seed=0)
    runs = run_batches({batch_size: steps}, split, progress=progress)
    fig, ax = plotting.figure(f"Batch size {batch_size}: test accuracy after {steps} steps", "normalization",
                              "test accuracy (fraction correct)")
    bars = ax.bar([LABEL[n] for n in NORMS], [runs[(n, batch_size)].test_acc for n in NORMS],
                  color=plotting.PALETTE[:3])
    ax.bar_label(bars, fmt="%.2f")
    ax.axhline(0.1, color="black", ls=":", lw=1)
    ax.set_ylim(0, 1)
    numbers = {f"{LABEL[n]} test accuracy": runs[(n, batch_size)].test_acc for n in NORMS}
    batch_norm = runs[("batch", batch_size)]
    numbers["BatchNorm: same prediction in train and eval mode"] = batch_norm.train_eval_agreement
    numbers["BatchNorm left in train mode: test accuracy, i.i.d. batches"] = batch_norm.train_mode_acc
    numbers["BatchNorm left in train mode: test accuracy, class-sorted batches"] = batch_norm.sorted_train_mode_acc
    return fig, numbers


def check_layer_norm(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None) -> bool:
    """Exercise: ``fn(x, weight, bias)`` normalises each row of x over its features (eps 1e-5), like nn.LayerNorm."""
    generator = torch.Generator().manual_seed(0)
    for shape in ((4, 6), (2, 3, 5)):
        x = 2 + 3 * torch.randn(*shape, generator=generator, dtype=torch.float64)
        reference = nn.LayerNorm(shape[-1], dtype=torch.float64)
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5, generator=generator)
            reference.bias.uniform_(-1, 1, generator=generator)
        weight, bias = reference.weight.detach().clone(), reference.bias.detach().clone()
        out = exercises.attempt(fn, x, weight, bias, what="layer_norm(x, weight, bias)")
        if out is exercises.NOT_ATTEMPTED:
            return False
        expected = reference(x).detach()
        if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
            return exercises.wrong(f"for x of shape {tuple(shape)} the output must have the same shape, got "
                                   f"{getattr(out, 'shape', type(out).__name__)}")
        if not torch.allclose(out, expected, atol=1e-6):
            columns = functional.batch_norm(x.reshape(-1, shape[-1]), None, None, training=True).reshape(shape)
            hint = ("you normalised over the batch (dim 0), which is BatchNorm: take statistics over the last "
                    "dimension, `dim=-1, keepdim=True`" if torch.allclose(out, columns * weight + bias, atol=1e-4)
                    else "mean and *biased* variance over the last dimension (unbiased=False), eps = 1e-5 inside "
                    "the square root, then multiply by weight and add bias")
            return exercises.wrong(f"for x of shape {tuple(shape)} the largest difference from nn.LayerNorm is "
                                   f"{(out - expected).abs().max().item():.3g}", hint)
    return exercises.correct("your layer_norm matches nn.LayerNorm on 2-D and 3-D inputs: statistics per example, "
                             "over its features, with no running averages to keep")
