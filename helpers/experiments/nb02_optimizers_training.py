"""Notebook 02's training experiments on MNIST-1D: sweeps, the Adam-vs-SGD race, schedules and warmup,
momentum as a rescaled rate, batch-size scaling, weight-decay grids and the Run-button training explorer.

Every run trains a fresh model with the from-scratch optimizers (``helpers.scratch.optimizers``) through
the core ``helpers.train.fit``, so what the notebook measures is what the notebook shows.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from matplotlib.ticker import NullFormatter
from torch import nn

from helpers import progress as progress_tools
from helpers.data import Splits
from helpers.models import cnn1d, mlp
from helpers.plotting import PALETTE, figure, heatmap
from helpers.progress import Report
from helpers.scratch import optimizers
from helpers.train import OPTIMIZERS, Callback, History, fit, make_optimizer
from helpers.validation import check_choice, check_float, check_int

MODELS = ("mlp", "cnn")
SCHEDULES = ("constant", "step", "cosine", "linear", "warmup", "warmup_cosine", "one_cycle", "wsd")


# --------------------------------------------------------------------------------------------
# Learning-rate schedules: a multiplier of the peak rate at every step
# --------------------------------------------------------------------------------------------
def lr_multiplier(name: str, total_steps: int, warmup_fraction: float = 0.1) -> Callable[[int], float]:
    """The schedule ``name`` as a function of the step (0-based): the fraction of the peak rate to use.

    constant; step (x0.1 at 50% and again at 75%); cosine and linear decay to zero; warmup (linear ramp
    over ``warmup_fraction`` of the steps, then constant); warmup_cosine (the ramp, then cosine);
    one_cycle (Smith & Topin 2019: a 30% ramp from 1/25 of the peak, then cosine to near zero);
    wsd, warmup-stable-decay (the ramp, constant, then linear decay to zero over the last 20%).
    """
    check_choice("schedule", name, SCHEDULES)
    total = check_int("total_steps", total_steps, 2, 100_000_000)
    warm = max(1, round(check_float("warmup_fraction", warmup_fraction, 0.0, 0.5) * total))

    def cosine(progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm)
        if name == "constant":
            return 1.0
        if name == "step":
            return 0.1 ** ((step >= total // 2) + (step >= 3 * total // 4))
        if name == "cosine":
            return cosine(step / total)
        if name == "linear":
            return 1 - step / total
        if name == "warmup":
            return ramp
        if name == "warmup_cosine":
            return ramp if step < warm else cosine((step - warm) / (total - warm))
        if name == "one_cycle":
            peak = round(0.3 * total)
            return (1 / 25 + (1 - 1 / 25) * step / peak) if step < peak else cosine((step - peak) / (total - peak))
        cooldown = round(0.8 * total)                                   # wsd
        return ramp if step < warm else min(1.0, (total - step) / (total - cooldown))
    return factor


def schedule_curve(name: str, total_steps: int, warmup_fraction: float = 0.1) -> np.ndarray:
    """The multiplier at every step (for plotting the schedule's shape; no training)."""
    factor = lr_multiplier(name, total_steps, warmup_fraction)
    return np.array([factor(step) for step in range(total_steps)])


# --------------------------------------------------------------------------------------------
# One training run, and sweeps of them
# --------------------------------------------------------------------------------------------
def build_model(kind: str, data: Splits, seed: int = 0) -> nn.Module:
    """A fresh MLP (two hidden layers of 64) or 1-D CNN (16 channels), initialised from ``seed``."""
    check_choice("kind", kind, MODELS)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = (mlp(data.n_features, data.n_classes, width=64, depth=2) if kind == "mlp"
             else cnn1d(data.n_classes, channels=16, length=data.n_features))
    return model.to(data.x_train.device)


class StepProgress(Callback):
    """Reports the fraction of mini-batches done (finer than ``fit``'s per-epoch reports)."""

    def __init__(self, total_steps: int, report: Report) -> None:
        self.total_steps, self.report = total_steps, report

    def on_after_backward(self, model: nn.Module, step: int) -> None:
        self.report((step + 1) / self.total_steps)


def train_on_mnist1d(kind: str, data: Splits, optimizer: str, lr: float, epochs: int, *, weight_decay: float = 0.0,
                     momentum: float = 0.9, schedule: str = "constant", warmup_fraction: float = 0.1,
                     batch_size: int = 128, seed: int = 0, progress: bool | Report | None = None) -> History:
    """Train a fresh ``kind`` model with a from-scratch optimizer and a schedule stepped every mini-batch.

    Weight decay skips biases (``make_optimizer`` given the model). ``progress``: None shows the cell's
    bar, False nothing, and a callable gets the fraction of mini-batches done after each one.
    """
    check_int("epochs", epochs, 1, 1000)
    check_int("batch_size", batch_size, 1, 100_000)
    model = build_model(kind, data, seed)
    opt = make_optimizer(optimizer, model, lr, weight_decay, momentum=momentum, library=optimizers)
    total = epochs * math.ceil(len(data.y_train) / batch_size)
    factor = lr_multiplier(schedule, total, warmup_fraction)
    scheduler = None if schedule == "constant" else (lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor))
    callbacks = [StepProgress(total, progress)] if callable(progress) else []
    return fit(model, data, epochs=epochs, opt=opt, scheduler=scheduler, batch_size=batch_size, seed=seed,
               callbacks=callbacks, progress=False if callable(progress) else progress)


def lr_sweep(kind: str, data: Splits, optimizer: str, lrs: Sequence[float], epochs: int, seed: int = 0,
             **options) -> dict[float, History]:
    """One fresh run per learning rate: ``{lr: history}``."""
    check_int("number of learning rates", len(lrs), 1, 20)
    return {lr: train_on_mnist1d(kind, data, optimizer, lr, epochs, seed=seed, **options) for lr in lrs}


def best_lr(sweep: dict[float, History]) -> float:
    """The learning rate whose run ended with the highest validation accuracy."""
    if not sweep:
        raise ValueError("sweep must hold at least one run")
    return max(sweep, key=lambda lr: sweep[lr].val_acc[-1])


def at_edge(sweep: dict[float, History]) -> bool:
    """Whether the best rate is the smallest or largest of the sweep (the grid may not bracket the optimum)."""
    return len(sweep) > 1 and best_lr(sweep) in (min(sweep), max(sweep))


def curve_gap(first: History, second: History, metric: str = "val_acc") -> float:
    """Mean absolute difference between two runs' ``metric`` over the epochs both logged (epoch 0 excluded)."""
    check_choice("metric", metric, ("val_acc", "val_loss", "train_loss", "train_acc"))
    a, b = getattr(first, metric)[1:], getattr(second, metric)[1:]
    n = min(len(a), len(b))
    if n == 0:
        raise ValueError("both histories must hold at least one epoch after epoch 0")
    return float(np.mean(np.abs(np.array(a[:n]) - np.array(b[:n]))))


def race(adam: History, sgd: History, early_epoch: int) -> dict[str, float]:
    """Adam against SGD+momentum: accuracy at ``early_epoch`` and at the end, and the mean over the epochs."""
    check_int("early_epoch", early_epoch, 1, len(adam.epoch) - 1)
    return {"adam early": adam.at(early_epoch)["val_acc"], "sgd early": sgd.at(early_epoch)["val_acc"],
            "adam final": adam.val_acc[-1], "sgd final": sgd.val_acc[-1],
            "mean gap": float(np.mean(adam.val_acc[1:]) - np.mean(sgd.val_acc[1:]))}


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def plot_sweeps(sweeps: dict[str, dict[float, History]]):
    """Final validation accuracy against learning rate, one line per (model, optimizer)."""
    fig, ax = figure("Learning-rate sweeps on MNIST-1D", "learning rate (log scale)",
                     "final validation accuracy (fraction)", figsize=(9.5, 3.8))
    for name, sweep in sweeps.items():
        lrs = sorted(sweep)
        ax.semilogx(lrs, [sweep[lr].val_acc[-1] for lr in lrs], "o-", label=name)
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance (10 classes)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_runs(runs: dict[str, History], title: str, metrics: Sequence[str] = ("train_loss", "val_acc"),
              reference: float | None = None):
    """One panel per metric against epoch, one colour per run, the legend beside the panels."""
    labels = {"train_loss": "training loss (nats, log scale)", "val_loss": "validation loss (nats)",
              "val_acc": "validation accuracy (fraction)", "train_acc": "training accuracy (fraction)"}
    for metric in metrics:
        check_choice("metrics", metric, labels)
    fig, axes = figure(title, "epoch", labels[metrics[0]], ncols=len(metrics), figsize=(4.0 * len(metrics) + 2.2, 3.6))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, metric in zip(axes, metrics):
        ax.set_ylabel(labels[metric])
        for colour, (name, history) in zip(PALETTE * 2, runs.items()):
            ax.plot(history.epoch, getattr(history, metric), color=colour, label=name)
        if metric == "train_loss":
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        if reference is not None and metric.endswith("loss"):
            ax.axhline(reference, color="grey", ls=":", lw=1)
    if reference is not None:
        axes[-1].plot([], [], color="grey", ls=":", lw=1, label=f"ln 10 = {reference:.2f}: uniform guessing")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_schedules(total_steps: int, names: Sequence[str] = SCHEDULES, title: str = "Learning-rate schedules"):
    """The shapes of the schedules, one panel each, multiplier of the peak rate against step."""
    fig, axes = figure(title, "step (mini-batch)", "multiple of the peak rate",
                       ncols=len(names), figsize=(2.4 * len(names) + 0.6, 2.6))
    for ax, colour, name in zip(axes, PALETTE * 2, names):
        ax.plot(schedule_curve(name, total_steps), color=colour)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_ylim(-0.05, 1.1)
        ax.set_xticks([0, total_steps])
        if ax is not axes[0]:
            ax.set_ylabel("")
    return fig


# --------------------------------------------------------------------------------------------
# Learning rate x weight decay
# --------------------------------------------------------------------------------------------
def decay_grid(data: Splits, optimizer: str, lrs: Sequence[float], weight_decays: Sequence[float], epochs: int,
               seed: int = 0, progress: Report | None = None) -> np.ndarray:
    """Final validation accuracy of the MLP for every (weight decay, learning rate): rows decays, columns rates."""
    check_choice("optimizer", optimizer, ("adam", "adamw"))
    check_int("grid size", len(lrs) * len(weight_decays), 1, 100)
    grid = np.zeros((len(weight_decays), len(lrs)))
    for i, weight_decay in enumerate(weight_decays):
        for j, lr in enumerate(lrs):
            cell = i * len(lrs) + j
            report = progress_tools.share(progress, cell / grid.size, (cell + 1) / grid.size)
            history = train_on_mnist1d("mlp", data, optimizer, lr, epochs, weight_decay=weight_decay, seed=seed,
                                       progress=report)
            grid[i, j] = history.val_acc[-1]
    return grid


def plot_grids(grids: dict[str, np.ndarray], lrs: Sequence[float], weight_decays: Sequence[float]):
    """One annotated heatmap per optimizer, on a shared colour scale from chance to the best cell."""
    fig, axes = figure("Validation accuracy over learning rate x weight decay (MLP, MNIST-1D)", "learning rate",
                       "weight decay", ncols=len(grids), figsize=(5.5 * len(grids), 4.2))
    top = float(max(grid.max() for grid in grids.values()))
    for ax, (name, grid) in zip(axes, grids.items()):
        heatmap(grid, lrs, weight_decays, {"adam": "Adam + L2", "adamw": "AdamW"}.get(name, name), "learning rate",
                "weight decay", "validation accuracy (fraction)", ax=ax, vmin=0.1, vmax=top)
    return fig


# --------------------------------------------------------------------------------------------
# Weight decay on a weight followed by normalization: an effective learning rate
# --------------------------------------------------------------------------------------------
class WeightTracker(Callback):
    """Records a weight's norm at the end of every epoch and the angle (degrees) its direction turned."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight

    def on_train_begin(self, model: nn.Module) -> None:
        self.previous = self.weight.detach().clone()
        self.norms, self.turns = [self.previous.norm().item()], []

    def on_epoch_end(self, model: nn.Module, history: History) -> bool:
        now = self.weight.detach().clone()
        cosine = (now * self.previous).sum() / (now.norm() * self.previous.norm())
        self.turns.append(math.degrees(math.acos(min(1.0, cosine.item()))))
        self.norms.append(now.norm().item())
        self.previous = now
        return False


def scale_invariant_model(data: Splits, width: int = 64, seed: int = 0) -> nn.Sequential:
    """Linear (no bias) -> LayerNorm (no gain) -> ReLU -> linear head: the loss ignores the first weight's scale."""
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    return nn.Sequential(nn.Linear(data.n_features, width, bias=False), nn.LayerNorm(width, elementwise_affine=False),
                         nn.ReLU(), nn.Linear(width, data.n_classes)).to(data.x_train.device)


def decay_before_normalization(data: Splits, weight_decay: float, lr: float, epochs: int, seed: int = 0,
                               progress: bool | Report | None = None) -> dict:
    """Train :func:`scale_invariant_model` with SGD + momentum, decaying only the normalized first weight.

    Returns the history and, per epoch, the first weight's norm and the angle its direction turned.
    """
    check_float("weight_decay", weight_decay, 0.0, 10.0)
    model = scale_invariant_model(data, seed=seed)
    first, head = model[0].weight, list(model[3].parameters())
    opt = optimizers.SGD([{"params": [first], "weight_decay": weight_decay}, {"params": head, "weight_decay": 0.0}],
                         lr=lr, momentum=0.9)
    tracker = WeightTracker(first)
    history = fit(model, data, epochs=epochs, opt=opt, callbacks=[tracker], seed=seed, progress=progress)
    return {"history": history, "norms": np.array(tracker.norms), "turns": np.array(tracker.turns)}


def scale_invariance(model: nn.Sequential, data: Splits, factor: float = 10.0) -> dict[str, float]:
    """Loss and gradient norm of the first weight after multiplying it by ``factor``, relative to before."""
    def loss_and_gradient() -> tuple[float, float]:
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(data.x_train[:256]), data.y_train[:256])
        loss.backward()
        return loss.item(), model[0].weight.grad.norm().item()

    loss, gradient = loss_and_gradient()
    with torch.no_grad():
        model[0].weight.mul_(factor)
    scaled_loss, scaled_gradient = loss_and_gradient()
    with torch.no_grad():
        model[0].weight.div_(factor)
    return {"loss ratio": scaled_loss / loss, "gradient ratio": scaled_gradient / gradient}


def plot_normalized_runs(runs: dict[str, dict]):
    """The normalized weight's norm and its turn per epoch, one line per run."""
    fig, (left, right) = figure("A weight followed by LayerNorm: norm and rotation", "epoch",
                                "norm of the first weight ||W||", ncols=2, figsize=(11, 3.6))
    right.set_ylabel("direction turned per epoch (degrees)")
    for colour, (name, run) in zip(PALETTE, runs.items()):
        left.plot(range(len(run["norms"])), run["norms"], color=colour, label=name)
        right.plot(range(1, len(run["turns"]) + 1), run["turns"], color=colour, label=name)
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------------------------
# The Run-button explorer
# --------------------------------------------------------------------------------------------
def explore_training(optimizer: str = "adamw", lr: float = 3e-3, weight_decay: float = 1e-2,
                     schedule: str = "warmup_cosine", model: str = "mlp", epochs: int = 10, seed: int = 0,
                     data: Splits | None = None, progress: Report | None = None):
    """Explorer (Run button): learning curves of one run on MNIST-1D with the chosen settings."""
    from helpers.data import mnist1d

    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_float("lr", lr, 1e-5, 1.0)
    check_float("weight_decay", weight_decay, 0.0, 1.0)
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("model", model, MODELS)
    check_int("epochs", epochs, 1, 60)
    data = data if data is not None else mnist1d(seed=seed)
    history = train_on_mnist1d(model, data, optimizer, lr, epochs, weight_decay=weight_decay, schedule=schedule,
                               seed=seed, progress=progress if progress is not None else False)
    label = f"{optimizer}, lr {lr:.2g}, weight decay {weight_decay:.2g}, {schedule.replace('_', ' ')}"
    fig = plot_runs({label: history}, f"{model.upper()} on MNIST-1D", ("train_loss", "val_acc"),
                    reference=math.log(data.n_classes))
    numbers = {"final validation accuracy": history.val_acc[-1], "best validation accuracy": history.best("val_acc"),
               "final training loss": history.train_loss[-1], "seconds": history.seconds[-1]}
    if not math.isfinite(history.train_loss[-1]):
        numbers["note"] = (f"Training diverged: the loss overflowed at epoch {history.stopped_epoch}. "
                           "Lower the learning rate or add warmup.")
    elif history.val_acc[-1] <= 1.5 / data.n_classes and history.train_loss[-1] > 0.95 * math.log(data.n_classes):
        numbers["note"] = ("The network died: the loss sits at ln 10 and accuracy is chance. The first steps at this "
                           "rate pushed the units into a region where no gradient flows; lower the rate or warm up.")
    return fig, numbers
