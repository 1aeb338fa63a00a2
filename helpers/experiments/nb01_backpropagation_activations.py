"""Notebook 01, section 4: what an activation function does to the forward and the backward pass.

Activation curves and slopes, the collapse of a linear stack, dead ReLU units (per layer, at initialisation
and after training), and why a network cannot start from all-equal weights (symmetry).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers import plotting
from helpers.data import Splits
from helpers.models import mlp
from helpers.train import fit
from helpers.validation import check_choice, check_float, check_int

ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
    "leaky_relu": lambda z: nn.functional.leaky_relu(z, 0.1), "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
}


def activation_curves(lo: float = -4.0, hi: float = 4.0, n: int = 401) -> dict[str, tuple[np.ndarray, ...]]:
    """For each activation: inputs z, values phi(z) and slopes phi'(z) (by autograd)."""
    check_float("lo", lo, -50.0, 50.0)
    check_float("hi", hi, lo, 50.0, lo_open=True)
    check_int("n", n, 3, 100_000)
    curves = {}
    for name, fn in ACTIVATION_FNS.items():
        z = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
        out = fn(z)
        (slope,) = torch.autograd.grad(out.sum(), z)
        curves[name] = (z.detach().numpy(), out.detach().numpy(), slope.numpy())
    return curves


def activation_figure(curves: dict[str, tuple[np.ndarray, ...]]):
    """Two panels: the activations, and their slopes (the factor each layer multiplies into the gradient)."""
    fig, (left, right) = plotting.figure("Activation functions and their slopes", "pre-activation z (unitless)",
                                         "phi(z)", ncols=2)
    right.set_ylabel("phi'(z): factor passed to the gradient")
    for name, (z, value, slope) in curves.items():
        left.plot(z, value, label=name)
        right.plot(z, slope, label=name)
    left.set_title("activation")
    right.set_title("slope")
    right.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def linear_collapse_error(depth: int = 10, width: int = 32, seed: int = 0) -> float:
    """Largest |net(x) - x M^T| for ``depth`` linear layers (no bias, no activation) and M = W_depth ... W_1."""
    check_int("depth", depth, 1, 100)
    check_int("width", width, 1, 1024)
    torch.manual_seed(seed)
    layers = [nn.Linear(width, width, bias=False) for _ in range(depth)]
    for layer in layers:
        nn.init.orthogonal_(layer.weight)
    product = torch.eye(width)
    for layer in layers:
        product = layer.weight @ product
    x = torch.randn(64, width)
    with torch.no_grad():
        return (nn.Sequential(*layers)(x) - x @ product.T).abs().max().item()


# --------------------------------------------------------------------------- dead ReLU units
@torch.no_grad()
def dead_fraction_per_layer(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Per hidden layer, the fraction of units whose output is never positive on ``x`` (a dead unit, for ReLU)."""
    _, hidden = model.forward_with_hidden(x)
    return np.array([(h <= 0).all(dim=0).float().mean().item() for h in hidden])


DEAD_CASES = {"Adam lr 1e-3": (1e-3, None, "relu"), "Adam lr 1e-2": (1e-2, None, "relu"),
              "Adam lr 0.3": (0.3, None, "relu"), "leaky ReLU, Adam lr 0.3": (0.3, None, "leaky_relu"),
              "biases at -3": (1e-3, -3.0, "relu")}


def dead_relu_runs(data: Splits, epochs: int = 3, width: int = 128, seed: int = 0,
                   cases: dict[str, tuple[float, float | None, str]] | None = None) -> list[dict[str, Any]]:
    """Train an MLP with two hidden layers (He init, Adam) once per case; dead units per layer before and after.

    ``cases`` maps a name to (learning rate, bias initialisation or None for zeros, activation "relu" or
    "leaky_relu"); the default is :data:`DEAD_CASES`. Each row holds, per hidden layer, the share of units
    that are never positive on the training set at initialisation and after training (for leaky ReLU such
    units still pass a gradient), and the final validation accuracy.
    """
    check_int("epochs", epochs, 1, 100)
    rows = []
    for name, (lr, bias, activation) in (cases or DEAD_CASES).items():
        check_choice("activation", activation, ("relu", "leaky_relu"))
        torch.manual_seed(seed)
        model = mlp(data.n_features, data.n_classes, width=width, depth=2, activation=activation,
                    init="he").to(data.x_train.device)
        if bias is not None:
            with torch.no_grad():
                for block in model.blocks:
                    block.linear.bias.fill_(bias)
        at_init = dead_fraction_per_layer(model, data.x_train)
        history = fit(model, data, epochs=epochs, lr=lr, batch_size=128, seed=seed, progress=False)
        rows.append({"case": name, "dead at init": at_init, "dead after training": dead_fraction_per_layer(
            model, data.x_train), "validation accuracy": history.val_acc[-1]})
    return rows


def dead_units_figure(rows: Sequence[dict[str, Any]], epochs: int):
    """Per case, bars of each layer's dead fraction at initialisation and after training, values printed."""
    fig, ax = plotting.figure(f"Dead ReLU units per layer, at initialisation and after {epochs} epochs",
                              "training set-up (final validation accuracy)",
                              "units never positive on any input (fraction)", figsize=(9.5, 3.8))
    n_layers = len(rows[0]["dead at init"])
    bars = [(when, layer) for layer in range(n_layers) for when in ("dead at init", "dead after training")]
    width = 0.8 / len(bars)
    colours = {"dead at init": ["#9CC3E6", "#F4B183"], "dead after training": ["#0072B2", "#D55E00"]}
    for k, (when, layer) in enumerate(bars):
        xs = np.arange(len(rows)) + (k - (len(bars) - 1) / 2) * width
        values = [row[when][layer] for row in rows]
        ax.bar(xs, values, width, color=colours[when][layer % 2],
               label=f"layer {layer + 1}, {'at init' if when == 'dead at init' else 'after training'}")
        for x, v in zip(xs, values):
            ax.text(x, v + 0.02, f"{v:.0%}", ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-0.02, 1.12)
    names = [row["case"].replace(", ", ",\n") for row in rows]           # "leaky ReLU,\nAdam lr 0.3"
    labels = [f"{name}\n(val {row['validation accuracy']:.2f})" for name, row in zip(names, rows)]
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


# --------------------------------------------------------------------------- symmetry: why not all-equal weights
def symmetric_start(data: Splits, start: str, width: int = 32, epochs: int = 3, seed: int = 0) -> dict[str, float]:
    """Train an MLP with two tanh hidden layers from ``start`` = "zeros", "constant" (every weight 0.1) or "random".

    Returns how many distinct units the first hidden layer holds after training (rows of its weight
    matrix that differ by more than 1e-6 of their scale), the largest |weight| of that layer, and the
    validation accuracy.
    """
    check_choice("start", start, ("zeros", "constant", "random"))
    check_int("width", width, 2, 1024)
    torch.manual_seed(seed)
    model = mlp(data.n_features, data.n_classes, width=width, depth=2, activation="tanh", init="xavier")
    if start != "random":
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(0.0 if start == "zeros" or parameter.dim() == 1 else 0.1)
    history = fit(model.to(data.x_train.device), data, epochs=epochs, lr=1e-2, batch_size=128, seed=seed,
                  progress=False)
    weight = model.blocks[0].linear.weight.detach().cpu().double()                 # (width, n_features)
    tolerance = 1e-6 * max(weight.abs().max().item(), 1e-30)
    distinct: list[torch.Tensor] = []
    for row in weight:
        if all((row - seen).abs().max().item() > tolerance for seen in distinct):
            distinct.append(row)
    return {"distinct units": len(distinct), "largest |weight|": weight.abs().max().item(),
            "validation accuracy": history.val_acc[-1]}
