"""Notebook 00: one tiny end-to-end training run, its explorer and the first exercise checker."""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from helpers import data, exercises, models, plotting, train
from helpers.validation import check_float, check_int

CHANCE = 0.1                          # ten balanced classes


def train_linear_and_mlp(width: int = 128, epochs: int = 30, lr: float = 3e-3, n_train: int | None = None,
                         seed: int = 0) -> dict[str, tuple[nn.Module, train.History]]:
    """Train a linear classifier (multinomial logistic regression) and an MLP with two hidden layers on MNIST-1D.

    Both see the same data, optimizer (Adam) and seed; returns ``{"linear": (model, history), "mlp": (...)}``.
    """
    check_int("width", width, 1, 4096)
    check_int("epochs", epochs, 1, 1000)
    check_float("lr", lr, 1e-6, 1.0)
    splits = data.mnist1d(n_train=n_train, seed=seed)
    runs = {}
    for name in ("linear", "mlp"):
        torch.manual_seed(seed)
        model = nn.Linear(splits.n_features, 10) if name == "linear" else models.mlp(
            splits.n_features, 10, width=width, depth=2)
        model.to(splits.x_train.device)
        runs[name] = (model, train.fit(model, splits, epochs=epochs, lr=lr, seed=seed))
    return runs


def overfitting_summary(history: train.History) -> dict[str, float]:
    """Where validation loss bottomed out, and how far loss and accuracy moved after that epoch."""
    best = min(range(len(history.epoch)), key=lambda i: history.val_loss[i])
    return {"best epoch": history.epoch[best], "validation loss at best": history.val_loss[best],
            "validation loss at end": history.val_loss[-1], "validation accuracy at best": history.val_acc[best],
            "validation accuracy at end": history.val_acc[-1], "train accuracy at end": history.train_acc[-1]}


def curves_figure(histories: dict[str, train.History], title: str):
    """Learning curves (loss and accuracy, train dashed, validation solid) with the legends below the panels."""
    fig = plotting.learning_curves(histories, title=title)
    for ax in fig.axes:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


TINY_TRAIN, TINY_EPOCHS = 1000, 10
TINY_DEFAULTS = {"width": 64, "lr": 3e-3}
FAR_BELOW = 0.1                      # a validation accuracy this far under the default setting's earns a note


@lru_cache(maxsize=16)
def _tiny_training(width: int, lr: float, seed: int) -> tuple[models.MLP, train.History, torch.Tensor]:
    """The explorer's run for one setting (kept, so the default setting is trained once per seed)."""
    splits = data.mnist1d(n_train=TINY_TRAIN, seed=seed)
    torch.manual_seed(seed)
    model = models.mlp(splits.n_features, 10, width=width, depth=2).to(splits.x_train.device)
    history = train.fit(model, splits, epochs=TINY_EPOCHS, lr=lr, batch_size=100, seed=seed, progress=False)
    return model, history, splits.x_train


def tiny_run(width: int = TINY_DEFAULTS["width"], lr: float = TINY_DEFAULTS["lr"], seed: int = 0):
    """Explorer: train a small MLP (two hidden layers) on 1000 MNIST-1D signals for 10 epochs; curves and numbers.

    Small enough to rerun when a slider is released. Accuracy axes always span 0 to 1, so a run at
    chance reads as a flat line at the bottom, not as noise magnified. A note says when the run diverged,
    died, ended far below the default setting, or left most of a hidden layer dead.
    """
    check_int("width", width, 4, 256)
    check_float("lr", lr, 1e-5, 1.0)
    model, history, x_train = _tiny_training(width, lr, seed)
    fig = curves_figure({f"width {width}, lr {lr:.0e}": history},
                        title=f"MNIST-1D: a small MLP learning ({TINY_TRAIN} training signals)")
    loss_axis, accuracy_axis = fig.axes
    accuracy_axis.set_ylim(0, 1)
    accuracy_axis.axhline(CHANCE, color="black", ls=":", lw=1, label="chance (0.1)")
    accuracy_axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    loss_axis.set_ylim(0, max(3.0, min(max(history.val_loss + history.train_loss), 10.0)))
    final = history.final()
    numbers = {"final train accuracy": round(final["train_acc"], 3),
               "final validation accuracy": round(final["val_acc"], 3),
               "train - validation gap": round(final["gap"], 3), "parameters": models.count_parameters(model)}
    note = _tiny_note(width, lr, seed, history, [_never_fires(h) for h in _hidden(model, x_train)])
    if note:
        numbers["note"] = note
    return fig, numbers


def _tiny_note(width: int, lr: float, seed: int, history: train.History, silent: list[float]) -> str | None:
    """What went wrong in a tiny run, in words, or None when nothing did."""
    final = history.final()
    dead_layer = max(range(len(silent)), key=lambda k: silent[k])
    dead = (f"{silent[dead_layer]:.0%} of the units of hidden layer {dead_layer + 1} never fire on any training "
            "signal, so no gradient reaches them (notebook 01 explains why).")
    if not all(math.isfinite(v) for v in history.train_loss):
        return "Training diverged: the loss became infinite or not a number. Lower the learning rate."
    if max(final["train_acc"], final["val_acc"]) < CHANCE + 0.05:
        return f"The network died: accuracy is at chance ({final['val_acc']:.2f}) on both splits. " + dead
    default = _tiny_training(TINY_DEFAULTS["width"], TINY_DEFAULTS["lr"], seed)[1].final()["val_acc"]
    notes = []
    if final["val_acc"] < default - FAR_BELOW:
        causes = [f"the learning rate is {'above' if lr > TINY_DEFAULTS['lr'] else 'below'} the default "
                  f"{TINY_DEFAULTS['lr']:g}"] * (lr != TINY_DEFAULTS["lr"])
        causes += [f"the width is {'above' if width > TINY_DEFAULTS['width'] else 'below'} the default "
                   f"{TINY_DEFAULTS['width']}"] * (width != TINY_DEFAULTS["width"])
        notes.append(f"Validation accuracy {final['val_acc']:.2f} is far below the default setting's {default:.2f}"
                     + (f" ({' and '.join(causes)})." if causes else "."))
    if silent[dead_layer] > 0.5:
        notes.append("Most of a layer is dead: " + dead)
    return " ".join(notes) or None


@torch.no_grad()
def _hidden(model: models.MLP, x: torch.Tensor) -> list[torch.Tensor]:
    return model.forward_with_hidden(x)[1]


def _never_fires(h: torch.Tensor) -> float:
    """Fraction of the layer's ReLU units that output 0 for every example."""
    return (h <= 0).all(dim=0).float().mean().item()


def check_initial_loss(answer) -> bool:
    """Your-turn checker: the cross-entropy of an untrained 10-class classifier with near-uniform outputs."""
    if answer is None:
        return exercises.not_attempted("replace None with your formula for the loss at initialisation")
    expected = math.log(10)
    if not isinstance(answer, (int, float)) or abs(answer - expected) > 1e-3:
        return exercises.wrong(f"got {answer!r}", "a uniform guess gives each class probability 1/10; cross-entropy "
                               "is minus the log of the probability given to the true class")
    return exercises.correct(f"ln(10) = {expected:.4f} nats. A loss at initialisation far from this signals a bug "
                             "(notebook 05).")
