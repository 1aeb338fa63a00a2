"""Notebook 02's stability experiments, step by step on MNIST-1D: the learning-rate range test, a rate so high
that the network dies, gradient clipping against divergence, and the range-test exercise checker.

Each function takes a freshly built model (the notebook builds it), trains it in place and reports the
training loss after every mini-batch.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from matplotlib.ticker import NullFormatter
from torch import nn

from helpers import exercises
from helpers.data import Splits
from helpers.plotting import PALETTE, figure
from helpers.scratch import optimizers
from helpers.train import make_optimizer
from helpers.validation import check_float, check_int


def corrupt_inputs(data: Splits, fraction: float = 0.003, scale: float = 100.0, seed: int = 0) -> Splits:
    """A copy of ``data`` whose training split has ``fraction`` of its examples multiplied by ``scale``.

    A few broken records (a sensor that reports in the wrong unit) give rare, huge gradients.
    """
    check_float("fraction", fraction, 0.0, 1.0)
    check_float("scale", scale, 1.0, 1e6)
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(data.y_train), generator=generator)[:round(fraction * len(data.y_train))]
    x_train = data.x_train.clone()
    x_train[chosen.to(x_train.device)] *= scale
    return dataclasses.replace(data, x_train=x_train)


def _batch(data: Splits, generator: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randint(len(data.y_train), (batch_size,), generator=generator).to(data.x_train.device)
    return data.x_train[index], data.y_train[index]


def lr_range_test(model: nn.Module, data: Splits, optimizer: str = "momentum", lr_min: float = 1e-5,
                  lr_max: float = 10.0, steps: int = 100, batch_size: int = 128, smoothing: float = 0.9,
                  seed: int = 0) -> dict:
    """Smith's (2017) range test: raise the rate exponentially every mini-batch and record the smoothed loss.

    Stops once the smoothed loss passes 4x its minimum. The suggestion is a tenth of the rate at the
    minimum of the smoothed loss, a rule of thumb that keeps well below where training blows up.
    """
    check_float("lr_min", lr_min, 1e-8, 1.0)
    check_float("lr_max", lr_max, lr_min, 100.0, lo_open=True)
    check_int("steps", steps, 10, 10_000)
    check_float("smoothing", smoothing, 0.0, 0.99)
    opt = make_optimizer(optimizer, model, lr_min, library=optimizers)
    growth = (lr_max / lr_min) ** (1 / (steps - 1))
    generator = torch.Generator().manual_seed(seed)
    lrs, losses, average = [], [], 0.0
    for t in range(steps):
        lr = lr_min * growth ** t
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = _batch(data, generator, batch_size)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        average = smoothing * average + (1 - smoothing) * loss.item()
        smoothed = average / (1 - smoothing ** (t + 1))                  # bias-corrected, as in Adam
        if not math.isfinite(smoothed):
            break
        lrs.append(lr)
        losses.append(smoothed)
        if smoothed > 4 * min(losses):
            break
    lrs, losses = np.array(lrs), np.array(losses)
    lowest = float(lrs[np.argmin(losses)])
    return {"lrs": lrs, "losses": losses, "lr_at_min": lowest, "suggested": lowest / 10}


def plot_range_test(result: dict, sweep: dict[float, float] | None = None, title: str = "Learning-rate range test"):
    """Smoothed loss against rate, the minimum and the suggestion marked; a sweep's accuracies beside it."""
    fig, ax = figure(title, "learning rate (log scale)", "smoothed training loss (nats)", figsize=(10, 3.8))
    ax.semilogx(result["lrs"], result["losses"], color=PALETTE[0], label="range test: smoothed loss")
    ax.axvline(result["lr_at_min"], color="grey", ls="--", label=f"loss minimum at {result['lr_at_min']:.2g}")
    ax.axvline(result["suggested"], color="black", ls=":", label=f"suggestion (a tenth) {result['suggested']:.2g}")
    if sweep:
        right = ax.twinx()
        right.semilogx(list(sweep), list(sweep.values()), "o-", color=PALETTE[1], label="sweep: final accuracy")
        right.set_ylabel("final validation accuracy (fraction)", color=PALETTE[1])
        right.set_ylim(0, 1)
        right.grid(False)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.15, 1.0))
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def train_steps(model: nn.Module, data: Splits, optimizer: str, lr: float, steps: int, clip_norm: float | None = None,
                batch_size: int = 128, seed: int = 0) -> dict:
    """Train ``model`` in place for ``steps`` mini-batches; the loss before every step and how often clipping acted.

    ``clip_norm`` rescales the gradient to that global norm whenever it is longer (Pascanu et al. 2013).
    Stops at the first non-finite loss.
    """
    check_int("steps", steps, 1, 100_000)
    if clip_norm is not None:
        check_float("clip_norm", clip_norm, 0.0, 1e6, lo_open=True)
    opt = make_optimizer(optimizer, model, lr, library=optimizers)
    generator = torch.Generator().manual_seed(seed)
    losses, clipped = [], 0
    for _ in range(steps):
        x, y = _batch(data, generator, batch_size)
        loss = nn.functional.cross_entropy(model(x), y)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        opt.zero_grad()
        loss.backward()
        if clip_norm is not None:
            norm = nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            clipped += int(norm > clip_norm)
        opt.step()
    return {"losses": np.array(losses), "clipped fraction": clipped / len(losses)}


def loss_growth(losses: np.ndarray) -> float:
    """How far the loss rose: largest loss / first loss (inf if it stopped being finite)."""
    if len(losses) == 0:
        raise ValueError("losses must hold at least one value")
    return math.inf if not np.all(np.isfinite(losses)) else float(np.max(losses) / losses[0])


@torch.no_grad()
def dead_unit_fractions(model: nn.Module, x: torch.Tensor) -> list[float]:
    """For each ReLU layer, the fraction of its units that output zero for every input in ``x``.

    No gradient flows through such a unit, so nothing in training can bring it back.
    """
    outputs = []
    hooks = [module.register_forward_hook(lambda _m, _i, out: outputs.append(out.flatten(1)))
             for module in model.modules() if isinstance(module, nn.ReLU)]
    if not hooks:
        raise ValueError("model must contain nn.ReLU modules")
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return [float((units.max(dim=0).values <= 0).float().mean()) for units in outputs]   # units: (examples, width)


def plot_losses(runs: dict[str, np.ndarray], title: str, reference: float | None = None):
    """Training loss against step, one line per run (a run that overflowed ends where it overflowed)."""
    fig, ax = figure(title, "step (mini-batch)", "training loss (nats, log scale)", figsize=(9.5, 3.8))
    for colour, (name, losses) in zip(PALETTE, runs.items()):
        ended = "" if np.all(np.isfinite(losses)) else f" (overflowed at step {len(losses) - 1})"
        ax.semilogy(np.where(np.isfinite(losses), losses, np.nan), color=colour, label=name + ended)
    if reference is not None:
        ax.axhline(reference, color="grey", ls=":", lw=1, label=f"ln 10 = {reference:.2f}: uniform guessing")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def check_lr_pick(lr: float | None, result: dict) -> bool:
    """Accept a rate between 1/100 and 1/2 of the range test's loss-minimising rate."""
    if lr is None:
        return exercises.not_attempted("set my_lr to a learning rate read off the range-test plot")
    try:
        lr = check_float("my_lr", lr, 1e-8, 100.0, lo_open=True)
    except ValueError as error:
        return exercises.wrong(str(error))
    low, high = result["lr_at_min"] / 100, result["lr_at_min"] / 2
    if lr > high:
        return exercises.wrong(f"{lr:.3g} is too close to where the loss turns up ({result['lr_at_min']:.3g}): "
                               "training there sits on the edge of instability.",
                               "pick something several times smaller.")
    if lr < low:
        return exercises.wrong(f"{lr:.3g} is far below where the loss falls fastest; training would crawl.",
                               f"pick something within about 1/100 to 1/2 of {result['lr_at_min']:.3g}.")
    return exercises.correct(f"{lr:.3g} lies in [{low:.3g}, {high:.3g}], below the loss minimum at "
                             f"{result['lr_at_min']:.3g}.")
