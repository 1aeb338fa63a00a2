"""The start-here tour: one tiny end-to-end training run, and its explorer."""
from __future__ import annotations

import math

import torch
from torch import nn

from helpers import data, models, plotting, train
from helpers.validation import check_float, check_int

LOGISTIC_REGRESSION_BASELINE = 0.32  # MNIST-1D test accuracy reported by Greydanus (2020)


def train_linear_and_mlp(width: int = 128, epochs: int = 30, lr: float = 3e-3, n_train: int | None = None,
                         seed: int = 0) -> dict[str, tuple[nn.Module, train.History]]:
    """Train a linear classifier (multinomial logistic regression) and a two-layer MLP on MNIST-1D.

    Both see the same data and seed; returns ``{"linear": (model, history), "mlp": (model, history)}``.
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


def tiny_run(width: int = 64, lr: float = 3e-3, epochs: int = 12, seed: int = 0):
    """Explorer: train a small MLP on 1000 MNIST-1D signals; return learning curves and final numbers.

    Small enough (about a third of a second on two CPU cores) to rerun as a slider moves.
    """
    check_int("width", width, 4, 512)
    check_float("lr", lr, 1e-5, 1.0)
    check_int("epochs", epochs, 1, 50)
    splits = data.mnist1d(n_train=1000, seed=seed)
    torch.manual_seed(seed)
    model = models.mlp(splits.n_features, 10, width=width, depth=2).to(splits.x_train.device)
    history = train.fit(model, splits, epochs=epochs, lr=lr, batch_size=100, seed=seed, progress=False)
    fig = plotting.learning_curves({f"width {width}, lr {lr:.0e}": history},
                                   title="MNIST-1D: a small MLP learning (1000 training signals)")
    return fig, {"final train accuracy": round(history.train_acc[-1], 3),
                 "final validation accuracy": round(history.val_acc[-1], 3),
                 "train - validation gap": round(history.final()["gap"], 3),
                 "parameters": models.count_parameters(model)}


def check_initial_loss(answer) -> bool:
    """Your-turn checker: the cross-entropy of an untrained 10-class classifier with near-uniform outputs."""
    if answer is None:
        print("Not attempted yet: replace None with your formula for the loss at initialisation.")
        return False
    expected = math.log(10)
    if not isinstance(answer, (int, float)) or abs(answer - expected) > 1e-3:
        raise AssertionError(f"Not quite: got {answer!r}. Hint: a uniform guess gives each class probability 1/10; "
                             "cross-entropy is minus the log of the probability given to the true class.")
    print(f"Correct: ln(10) = {expected:.4f} nats. A first-epoch loss far from this signals a bug (notebook 05).")
    return True
