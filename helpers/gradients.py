"""How gradients flow (or fail to) through deep and recurrent networks.

* :func:`flow_model` / :func:`gradient_flow` -- per-layer norms of dLoss/d(activation) in a deep
  MLP at initialisation, by activation, initialisation, normalisation and residual connections.
* :func:`saturation_fractions`, :func:`update_to_data_ratios` -- the two standard health checks.
* :func:`activation_curves`, :func:`linear_collapse_error`, :func:`dead_relu_fraction` -- what an
  activation function does and what goes wrong with ReLU.
* :func:`rnn_gradient_growth`, :func:`clipping_check`, :func:`train_rnn` -- exploding gradients
  through time and gradient clipping.
* :func:`gradient_flow_explorer`, :func:`finite_difference_explorer` -- pure explorer functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers.autodiff import single_thread
from helpers.metrics import activation_gradient_norms
from helpers.models import ACTIVATIONS, INITS, NORMS, initialise, mlp
from helpers.validation import check_choice, check_float, check_int

FLOW_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu", "identity")
MAX_FLOW_DEPTH, MAX_FLOW_WIDTH = 50, 512


# --------------------------------------------------------------------------- models for gradient flow
class PreNormResidualMLP(nn.Module):
    """Input layer, then ``depth - 1`` pre-norm residual blocks ``h + W2 phi(W1 LN(h))``, then a head.

    As in GPT-2 (Radford et al. 2019), the block's output projection ``W2`` is scaled down by
    ``1/sqrt(depth)`` at initialisation, so the residual stream's variance grows from 1 to
    about 2 over the whole stack rather than by one unit per block. ``forward_with_hidden``
    returns the stream after the input layer and after every block (``depth`` tensors).
    """

    def __init__(self, in_features: int, n_classes: int, width: int, depth: int,
                 activation: str = "relu", init: str = "he", norm: str | None = "layer") -> None:
        super().__init__()
        check_int("depth", depth, 2, MAX_FLOW_DEPTH)
        self.input = nn.Linear(in_features, width)
        self.act = ACTIVATIONS[activation]()
        make_norm = {None: lambda: nn.Identity(), "layer": lambda: nn.LayerNorm(width),
                     "batch": lambda: nn.BatchNorm1d(width)}[norm]
        self.norms = nn.ModuleList(make_norm() for _ in range(depth - 1))
        self.inner = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.outer = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.head = nn.Linear(width, n_classes)
        initialise(self, "he" if init == "default" else init, activation)
        with torch.no_grad():
            for layer in self.outer:
                layer.weight.mul_(1.0 / math.sqrt(depth))

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the residual stream after the input layer and after each block."""
        h = self.act(self.input(x))
        hidden = [h]
        for norm, inner, outer in zip(self.norms, self.inner, self.outer):
            h = h + outer(self.act(inner(norm(h))))
            hidden.append(h)
        return self.head(h), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]


def flow_model(in_features: int, n_classes: int, depth: int, width: int, activation: str = "relu",
               init: str = "he", norm: str | None = None, residual: bool = False) -> nn.Module:
    """A deep MLP whose ``forward_with_hidden`` exposes one activation per layer.

    Without ``residual`` it is :func:`helpers.models.mlp` (``norm`` goes before each hidden
    linear layer after the first); with ``residual`` it is a :class:`PreNormResidualMLP`.
    """
    check_int("depth", depth, 2, MAX_FLOW_DEPTH)
    check_int("width", width, 2, MAX_FLOW_WIDTH)
    check_choice("activation", activation, FLOW_ACTIVATIONS)
    check_choice("init", init, INITS)
    check_choice("norm", norm, NORMS)
    if residual:
        return PreNormResidualMLP(in_features, n_classes, width, depth, activation, init, norm)
    if init == "default":
        return mlp(in_features, n_classes, width=width, depth=depth, activation=activation, norm=norm)
    with torch.device("meta"):  # build without PyTorch's default init, which `init` would overwrite
        model = mlp(in_features, n_classes, width=width, depth=depth, activation=activation, norm=norm)
    model.to_empty(device="cpu")
    for module in model.modules():
        if not isinstance(module, nn.Linear) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return initialise(model, init, activation)


def gradient_flow(activation: str = "relu", init: str = "he", depth: int = 20, width: int = 256,
                  norm: str | None = None, residual: bool = False, batch: int = 256, seed: int = 0,
                  n_classes: int = 10) -> np.ndarray:
    """Norm of dLoss/dh for each layer's activation h of a fresh net, input side first.

    Inputs are standard normal (``batch`` x ``width``) with random labels, so the numbers describe
    the initialisation itself, not a data set. Uses :func:`helpers.metrics.activation_gradient_norms`.
    Runs on the CPU in one thread (these small ops are faster that way on a shared machine).
    """
    check_int("batch", batch, 2, 4096)
    check_int("seed", seed, 0, 2**32 - 1)
    gen = torch.Generator().manual_seed(seed)
    with single_thread():
        torch.manual_seed(seed)
        model = flow_model(width, n_classes, depth, width, activation, init, norm, residual)
        x = torch.randn(batch, width, generator=gen)
        y = torch.randint(0, n_classes, (batch,), generator=gen)
        return np.array(activation_gradient_norms(model, x, y))


def flow_ratio(norms: Sequence[float]) -> float:
    """First-layer / last-layer gradient norm: below 1 vanishing, above 1 growing towards the input."""
    if len(norms) < 2:
        raise ValueError(f"norms must hold at least 2 layers' values, got {len(norms)}")
    return float(norms[0] / norms[-1])


def flow_table(settings: dict[str, dict[str, Any]], seeds: Sequence[int], depth: int = 20,
               width: int = 256, batch: int = 256) -> dict[str, dict[str, Any]]:
    """For each named setting (kwargs of :func:`gradient_flow`): per-layer norms of the first seed and the ratio per seed."""
    table = {}
    for name, kwargs in settings.items():
        runs = [gradient_flow(depth=depth, width=width, batch=batch, seed=s, **kwargs) for s in seeds]
        table[name] = {"norms": runs[0], "ratios": np.array([flow_ratio(r) for r in runs])}
    return table


def per_layer_figure(values: dict[str, Sequence[float]], title: str, ylabel: str, log: bool = False,
                     reference: float | None = None, reference_label: str = "reference"):
    """One line with markers per named setting, x = layer index (1 = input side)."""
    if not values or not all(len(v) >= 1 for v in values.values()):
        raise ValueError("values must map at least one setting name to a non-empty list of per-layer numbers")
    from matplotlib.ticker import MaxNLocator

    from helpers.plotting import figure

    fig, ax = figure(title, "layer (1 = input side)", ylabel)
    for name, v in values.items():
        ax.plot(range(1, len(v) + 1), v, "o-", ms=4, label=name)
    if log:
        ax.set_yscale("log")
    if reference is not None:
        ax.axhline(reference, color="black", ls=":", lw=1, label=reference_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- saturation and update ratios
def saturation_fractions(hidden: Sequence[torch.Tensor], activation: str, threshold: float = 0.1) -> np.ndarray:
    """Per layer, the fraction of units whose local derivative is below ``threshold`` of its maximum.

    tanh: 1 - t^2 < threshold; sigmoid: s(1 - s) < threshold / 4. Such units pass almost no gradient.
    """
    check_choice("activation", activation, ("tanh", "sigmoid"))
    check_float("threshold", threshold, 0.0, 1.0, lo_open=True)
    fractions = []
    for h in hidden:
        slope = 1 - h ** 2 if activation == "tanh" else 4 * h * (1 - h)
        fractions.append((slope < threshold).float().mean().item())
    return np.array(fractions)


def saturation_profile(activation: str, init: str, depth: int = 10, width: int = 256, batch: int = 256,
                       seed: int = 0) -> np.ndarray:
    """:func:`saturation_fractions` of a fresh ``depth``-layer MLP on standard-normal inputs."""
    check_int("batch", batch, 2, 4096)
    torch.manual_seed(seed)
    model = flow_model(width, 10, depth, width, activation, init)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        _, hidden = model.forward_with_hidden(x)
    return saturation_fractions(hidden, activation)


def update_to_data_ratios(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 0.05,
                          steps: int = 5, batch: int = 128, seed: int = 0) -> np.ndarray:
    """log10(std(lr * grad) / std(weight)) of each hidden linear layer's weight at the last of ``steps`` SGD steps.

    Karpathy's rule of thumb: about -3 is healthy; far below, the layer barely learns. The
    intended update lr * grad is used (in float32 an update below 1e-7 of the weight would not
    change it at all). ``model`` is trained in place.
    """
    check_float("lr", lr, 0.0, 10.0, lo_open=True)
    check_int("steps", steps, 1, 1000)
    check_int("batch", batch, 1, 100_000)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen).to(x.device)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        ratios = [math.log10(max((lr * w.grad).std().item(), 1e-30) / w.detach().std().item()) for w in weights]
        opt.step()
    return np.array(ratios)


def update_ratio_profile(data, activation: str, init: str, depth: int = 20, width: int = 128, lr: float = 0.05,
                         steps: int = 5, seed: int = 0) -> np.ndarray:
    """:func:`update_to_data_ratios` of a fresh ``depth``-layer MLP trained on ``data`` (a ``Splits``)."""
    torch.manual_seed(seed)
    model = flow_model(data.n_features, data.n_classes, depth, width, activation, init).to(data.x_train.device)
    return update_to_data_ratios(model, data.x_train, data.y_train, lr=lr, steps=steps, seed=seed)


# --------------------------------------------------------------------------- activation functions
ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
    "leaky_relu": lambda z: nn.functional.leaky_relu(z, 0.1), "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
}


def activation_curves(lo: float = -4.0, hi: float = 4.0, n: int = 401) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each activation: inputs z, values phi(z) and derivatives phi'(z) (by autograd)."""
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


def activation_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Two panels: the activations and their derivatives."""
    from helpers.plotting import figure

    fig, (left, right) = figure("Activation functions and their derivatives", "pre-activation z (unitless)",
                                "phi(z)", ncols=2)
    right.set_ylabel("phi'(z) (slope)")
    for name, (z, value, slope) in curves.items():
        left.plot(z, value, label=name)
        right.plot(z, slope, label=name)
    left.set_title("activation")
    right.set_title("derivative: the factor each layer multiplies into the gradient")
    right.legend()
    return fig


def linear_collapse_error(depth: int = 10, width: int = 32, seed: int = 0) -> float:
    """Max |net(x) - x M^T| for a stack of ``depth`` linear layers (no bias, no activation) and M = W_L...W_1."""
    check_int("depth", depth, 1, 100)
    check_int("width", width, 1, 1024)
    torch.manual_seed(seed)
    layers = [nn.Linear(width, width, bias=False) for _ in range(depth)]
    for layer in layers:
        nn.init.orthogonal_(layer.weight)
    net = nn.Sequential(*layers)
    product = torch.eye(width)
    for layer in layers:
        product = layer.weight @ product
    x = torch.randn(64, width)
    with torch.no_grad():
        return (net(x) - x @ product.T).abs().max().item()


@torch.no_grad()
def dead_relu_fraction(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of hidden ReLU units (all layers) that output zero for every example in ``x``."""
    _, hidden = model.forward_with_hidden(x)
    never = [(h <= 0).all(dim=0) for h in hidden]
    return torch.cat(never).float().mean().item()


def dead_relu_experiment(data, mode: str, epochs: int = 5, width: int = 128, seed: int = 0) -> float:
    """Train a 2-hidden-layer ReLU MLP on ``data`` (a :class:`helpers.data.Splits`) and return its dead fraction.

    ``mode``: ``healthy`` (Adam, lr 1e-3), ``large_lr`` (Adam, lr 0.3), ``negative_bias``
    (biases initialised to -3, Adam lr 1e-3).
    """
    from helpers.train import fit

    check_choice("mode", mode, ("healthy", "large_lr", "negative_bias"))
    torch.manual_seed(seed)
    model = mlp(data.n_features, data.n_classes, width=width, depth=2, init="he").to(data.x_train.device)
    if mode == "negative_bias":
        with torch.no_grad():
            for block in model.blocks:
                block.linear.bias.fill_(-3.0)
    fit(model, data, epochs=epochs, lr=0.3 if mode == "large_lr" else 1e-3, batch_size=128, seed=seed,
        progress=False)
    return dead_relu_fraction(model, data.x_train)


# --------------------------------------------------------------------------- recurrent nets and clipping
def orthogonal(width: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random orthogonal ``width`` x ``width`` matrix (QR of a Gaussian matrix)."""
    check_int("width", width, 1, 2048)
    q, r = torch.linalg.qr(torch.randn(width, width, dtype=dtype, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


def rnn_gradient_growth(scale: float, steps: int, nonlinearity: str = "linear", width: int = 32,
                        seed: int = 0) -> float:
    """log of ||dL/dh_0|| / ||dL/dh_T|| for h_t = phi(s Q h_{t-1} + x_t) after ``steps`` steps.

    With phi the identity the Jacobian is (sQ)^T and the ratio is exactly s^T (Q keeps norms);
    with tanh each step also multiplies by tanh' <= 1, which caps the growth.
    """
    check_float("scale", scale, 0.0, 10.0, lo_open=True)
    check_int("steps", steps, 1, 1000)
    check_choice("nonlinearity", nonlinearity, ("linear", "tanh"))
    gen = torch.Generator().manual_seed(seed)
    recurrent = scale * orthogonal(width, seed)
    inputs = torch.randn(steps, width, dtype=torch.float64, generator=gen)
    h0 = torch.randn(width, dtype=torch.float64, generator=gen).requires_grad_()
    states, h = [], h0
    for t in range(steps):
        h = recurrent @ h + inputs[t]
        h = torch.tanh(h) if nonlinearity == "tanh" else h
        h.retain_grad()
        states.append(h)
    direction = torch.randn(width, dtype=torch.float64, generator=gen)
    (direction @ h).backward()
    return math.log(h0.grad.norm().item() / states[-1].grad.norm().item())


def clipping_check(grads: Sequence[torch.Tensor], max_norm: float) -> dict[str, float]:
    """Apply ``clip_grad_norm_`` to copies of ``grads``: norms before/after and cosine with the original."""
    check_float("max_norm", max_norm, 0.0, 1e12, lo_open=True)
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.detach().clone()
    before = torch.cat([g.flatten() for g in grads]).double()
    reported = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    after = torch.cat([p.grad.flatten() for p in params]).double()
    return {"norm_before": before.norm().item(), "reported_norm": reported, "norm_after": after.norm().item(),
            "cosine": (before @ after / (before.norm() * after.norm())).item()}


def rnn_training_figure(runs: dict[str, dict[str, np.ndarray]], lr: float, window: int = 10):
    """Loss and pre-clipping gradient norm per step for each run: raw (faint) and a moving average."""
    from helpers.plotting import PALETTE, figure

    check_int("window", window, 1, 1000)
    fig, (left, right) = figure(f"tanh RNN on remember-first, plain SGD at lr {lr:g}", "training step",
                                "cross-entropy loss (nats, log scale)", ncols=2)
    right.set_ylabel("gradient norm before clipping (log scale)")
    kernel = np.ones(window) / window
    for color, (label, run) in zip(PALETTE, runs.items()):
        for ax, key in ((left, "loss"), (right, "grad_norm")):
            steps = np.arange(len(run[key]))
            ax.plot(steps, run[key], color=color, alpha=0.25, lw=1)
            ax.plot(steps[window - 1:], np.convolve(run[key], kernel, mode="valid"), color=color,
                    label=f"{label} ({window}-step average)")
            ax.set_yscale("log")
    left.axhline(math.log(2), color="black", ls=":", lw=1, label="chance level, ln 2")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return fig


class SequenceClassifier(nn.Module):
    """A one-layer tanh RNN that reads a sequence and classifies it from the last hidden state."""

    def __init__(self, hidden: int = 32, n_classes: int = 2) -> None:
        super().__init__()
        check_int("hidden", hidden, 1, 1024)
        self.rnn = nn.RNN(1, hidden, batch_first=True, nonlinearity="tanh")
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def train_rnn(x: torch.Tensor, y: torch.Tensor, clip: float | None, lr: float = 0.5, steps: int = 200,
              hidden: int = 32, batch: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Train :class:`SequenceClassifier` with plain SGD; return the per-step loss and gradient norm.

    ``clip`` is the ``max_norm`` for ``clip_grad_norm_`` (``None`` trains unclipped). The gradient
    norm is measured before clipping.
    """
    check_float("lr", lr, 0.0, 100.0, lo_open=True)
    check_int("steps", steps, 1, 100_000)
    check_int("batch", batch, 1, 100_000)
    if clip is not None:
        check_float("clip", clip, 0.0, 1e6, lo_open=True)
    torch.manual_seed(seed)
    model = SequenceClassifier(hidden).to(x.device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses, norms = [], []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen).to(x.device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else float("inf"))
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    return {"loss": np.array(losses), "grad_norm": np.array(norms)}


# --------------------------------------------------------------------------- explorers
def gradient_flow_explorer(depth: int = 20, width: int = 128, activation: str = "relu", init: str = "he",
                           norm: str = "none", residual: bool = False, seed: int = 0):
    """Explorer: per-layer gradient norms of a fresh deep MLP (batch of 32) as log-scale bars.

    Returns ``(figure, numbers)`` with the first/last ratio and the smallest and largest norm.
    """
    from helpers.plotting import layer_bars

    check_int("depth", depth, 2, MAX_FLOW_DEPTH)
    check_int("width", width, 16, MAX_FLOW_WIDTH)
    check_choice("norm", norm, ("none", "layer", "batch"))
    norms = gradient_flow(activation, init, depth, width, None if norm == "none" else norm, bool(residual),
                          batch=32, seed=seed)
    label = f"{activation}, {init} init, norm {norm}{', residual' if residual else ''}"
    finite = np.isfinite(norms) & (norms > 0)
    shown = np.where(finite, norms, np.nan)
    fig = layer_bars({label: shown}, f"Gradient flow at initialisation (depth {depth}, width {width})",
                     "||dLoss/dh|| (log scale)")
    numbers = {"first / last layer": flow_ratio(norms) if finite.all() else float("nan"),
               "smallest norm": float(np.nanmin(shown)) if finite.any() else float("nan"),
               "largest norm": float(np.nanmax(shown)) if finite.any() else float("nan")}
    if not finite.all():
        numbers["layers whose gradient overflowed or vanished to 0 in float32"] = int((~finite).sum())
    return fig, numbers


FD_STEPS = np.logspace(-12, -1, 23)


@lru_cache(maxsize=2)
def _fd_curve(precision: str) -> np.ndarray:
    """The explorer's error curve for one precision, computed once per session."""
    from helpers.autodiff import finite_difference_errors

    return finite_difference_errors(FD_STEPS, precision, n_params=24)


def finite_difference_explorer(log10_h: float = -5.0, precision: str = "float64"):
    """Explorer: relative error of centred differences vs step size h in one precision, with the chosen h marked."""
    from helpers.autodiff import finite_difference_errors
    from helpers.plotting import figure

    check_float("log10_h", log10_h, -12.0, -1.0)
    check_choice("precision", precision, ("float32", "float64"))
    h = 10.0 ** log10_h
    errors = _fd_curve(precision)
    chosen = finite_difference_errors([h], precision, n_params=24)[0]
    fig, ax = figure(f"Finite-difference error vs step size ({precision})", "step size h (log scale)",
                     "relative error vs autodiff (log scale)")
    ax.loglog(FD_STEPS, np.maximum(errors, 1e-17), "o-", label=precision)
    ax.loglog([h], [max(chosen, 1e-17)], "*", ms=16, color="black", label=f"h = {h:.1e}")
    ax.legend()
    best = int(np.argmin(errors))
    return fig, {"error at h": float(chosen), "best h on the grid": float(FD_STEPS[best]),
                 "best error": float(errors[best])}
