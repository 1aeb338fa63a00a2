"""Notebook 01, section 5: how gradients vanish or explode through depth, and whether the network still trains.

Per-layer gradient norms at initialisation by activation, initialisation, normalisation and residual
connections; saturation; update-to-data ratios; Adam's first step against its epsilon; training the same
deep networks with SGD and Adam; and the gradient-flow explorer.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers import plotting
from helpers.config import one_thread
from helpers.data import Splits
from helpers.models import ACTIVATIONS, INITS, NORMS, initialise, mlp
from helpers.train import fit
from helpers.validation import check_choice, check_float, check_int

FLOW_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu", "identity")
MAX_FLOW_DEPTH, MAX_FLOW_WIDTH = 50, 512
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)       # smallest normal float32; below it precision is lost


class PreNormResidualMLP(nn.Module):
    """Input layer, then ``depth - 1`` pre-norm residual blocks ``h + W2 phi(W1 norm(h))``, then a head.

    As in GPT-2 (Radford et al. 2019), each block's output projection ``W2`` is scaled by ``1/sqrt(depth)``
    at initialisation, so the residual stream's variance grows from 1 to about 2 over the whole stack.
    ``forward_with_hidden`` returns the stream after the input layer and after every block.
    """

    def __init__(self, in_features: int, n_classes: int, width: int, depth: int,
                 activation: str = "relu", init: str = "he", norm: str | None = "layer") -> None:
        super().__init__()
        check_int("depth", depth, 2, MAX_FLOW_DEPTH)
        self.input = nn.Linear(in_features, width)
        self.act = ACTIVATIONS[activation]()
        make_norm = {None: nn.Identity, "layer": lambda: nn.LayerNorm(width),
                     "batch": lambda: nn.BatchNorm1d(width)}[norm]
        self.norms = nn.ModuleList(make_norm() for _ in range(depth - 1))
        self.inner = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.outer = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.head = nn.Linear(width, n_classes)
        self.initialise(init, activation)

    def initialise(self, init: str, activation: str) -> None:
        """``init`` for every linear layer (He for "default"), then each block's output projection scaled down."""
        initialise(self, "he" if init == "default" else init, activation)
        with torch.no_grad():
            for layer in self.outer:
                layer.weight.mul_(1.0 / math.sqrt(len(self.outer) + 1))

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.act(self.input(x))                                    # (B, width)
        hidden = [h]
        for norm, inner, outer in zip(self.norms, self.inner, self.outer):
            h = h + outer(self.act(inner(norm(h))))                    # (B, width) residual stream
            hidden.append(h)
        return self.head(h), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]


def flow_model(in_features: int, n_classes: int, depth: int, width: int, activation: str = "relu",
               init: str = "he", norm: str | None = None, residual: bool = False) -> nn.Module:
    """A deep MLP whose ``forward_with_hidden`` exposes one activation per layer (plain or pre-norm residual)."""
    check_int("depth", depth, 2, MAX_FLOW_DEPTH)
    check_int("width", width, 2, MAX_FLOW_WIDTH)
    check_choice("activation", activation, FLOW_ACTIVATIONS)
    check_choice("init", init, INITS)
    check_choice("norm", norm, NORMS)
    def build() -> nn.Module:
        if residual:
            return PreNormResidualMLP(in_features, n_classes, width, depth, activation, init, norm)
        return mlp(in_features, n_classes, width=width, depth=depth, activation=activation, init=init, norm=norm)

    if init == "default":
        return build()
    with torch.device("meta"):  # skip PyTorch's default initialisation, which `init` replaces anyway
        model = build()
    model.to_empty(device="cpu")
    for module in model.modules():
        if not isinstance(module, nn.Linear) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if residual:
        model.initialise(init, activation)
    else:
        initialise(model, init, activation)
    return model


def flow_pass(activation: str = "relu", init: str = "he", depth: int = 20, width: int = 256,
              norm: str | None = None, residual: bool = False, batch: int = 256, seed: int = 0,
              n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """||h|| and ||dLoss/dh|| for each layer's activation h of a fresh network, input side first (float32).

    Inputs are standard normal with random labels, so the numbers describe the initialisation, not
    a data set. Runs on the CPU in one thread (these small operations are fastest that way).
    """
    check_int("batch", batch, 2, 4096)
    check_int("seed", seed, 0, 2**32 - 1)
    generator = torch.Generator().manual_seed(seed)
    with one_thread():
        torch.manual_seed(seed)
        model = flow_model(width, n_classes, depth, width, activation, init, norm, residual)
        x = torch.randn(batch, width, generator=generator)                       # (batch, width)
        y = torch.randint(0, n_classes, (batch,), generator=generator)
        logits, hidden = model.forward_with_hidden(x)
        for h in hidden:
            h.retain_grad()
        nn.functional.cross_entropy(logits, y).backward()
        return (np.array([h.detach().double().norm().item() for h in hidden]),    # float64: the norm of
                np.array([h.grad.double().norm().item() for h in hidden]))        # huge entries stays finite


def gradient_flow(activation: str = "relu", init: str = "he", depth: int = 20, width: int = 256,
                  norm: str | None = None, residual: bool = False, batch: int = 256, seed: int = 0) -> np.ndarray:
    """||dLoss/dh|| for each layer of a fresh network at initialisation, input side first (see :func:`flow_pass`)."""
    return flow_pass(activation, init, depth, width, norm, residual, batch, seed)[1]


def flow_ratio(norms: Sequence[float]) -> float:
    """First-layer over last-layer gradient norm: below 1 the gradient shrinks towards the input, above 1 it grows."""
    if len(norms) < 2:
        raise ValueError(f"norms must hold at least 2 layers' values, got {len(norms)}")
    return float(norms[0] / norms[-1])


def flow_table(settings: dict[str, dict[str, Any]], seeds: Sequence[int], depth: int = 20, width: int = 256,
               batch: int = 256) -> dict[str, dict[str, np.ndarray]]:
    """Per named setting (keyword arguments of :func:`gradient_flow`): the first seed's norms and every seed's ratio."""
    table = {}
    for name, kwargs in settings.items():
        runs = [gradient_flow(depth=depth, width=width, batch=batch, seed=s, **kwargs) for s in seeds]
        table[name] = {"norms": runs[0], "ratios": np.array([flow_ratio(r) for r in runs])}
    return table


def per_layer_figure(values: dict[str, Sequence[float]], title: str, ylabel: str, log: bool = False,
                     reference: float | None = None, reference_label: str = "reference"):
    """One line with markers per named setting against the layer index (1 = input side); legend outside."""
    if not values or not all(len(v) >= 1 for v in values.values()):
        raise ValueError("values must map at least one setting name to a non-empty list of per-layer numbers")
    from matplotlib.ticker import MaxNLocator

    fig, ax = plotting.figure(title, "layer (1 = input side)", ylabel, figsize=(7.4, 3.8))
    _draw_per_layer(ax, values)
    if log:
        ax.set_yscale("log")
    if reference is not None:
        ax.axhline(reference, color="black", ls=":", lw=1, label=reference_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig


def _draw_per_layer(ax, values: dict[str, Sequence[float]]) -> None:
    """One line per setting; hollow markers that shrink from one setting to the next, so lines that lie on
    top of each other still show every marker (as concentric shapes)."""
    for k, (name, v) in enumerate(values.items()):
        ax.plot(range(1, len(v) + 1), v, marker="osD^vx"[k % 6], ls="-" if k % 2 == 0 else "--",
                ms=max(9 - 1.2 * k, 3), mfc="none", mew=1.3, label=name)


def flow_figure(norms: dict[str, Sequence[float]], depth: int, width: int):
    """Per-layer gradient norms at initialisation: raw on a log axis (left), and divided by the last layer's
    norm on an axis from 0.1 to 10 (right), where the settings that keep the gradient balanced separate."""
    from matplotlib.ticker import MaxNLocator

    fig, (raw, relative) = plotting.figure(f"Gradient norm per layer at initialisation ({depth} layers, width {width})",
                                           "layer (1 = input side)", "||dLoss/dh_l|| (log scale)", ncols=2,
                                           figsize=(11.0, 4.0))
    _draw_per_layer(raw, norms)
    _draw_per_layer(relative, {name: np.asarray(v) / v[-1] for name, v in norms.items()})
    relative.axhline(1.0, color="black", ls=":", lw=1, label="no change from the last layer")
    relative.set_ylim(0.1, 10)
    relative.set_ylabel("||dLoss/dh_l|| / last layer's (log scale)")
    raw.set_title("all settings", fontsize=10)
    relative.set_title("zoom: relative to the last layer, 0.1 to 10", fontsize=10)
    for ax in (raw, relative):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    relative.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig


# --------------------------------------------------------------------------- saturation and update ratios
def saturation_fractions(hidden: Sequence[torch.Tensor], activation: str, threshold: float = 0.1) -> np.ndarray:
    """Per layer, the fraction of units whose slope is below ``threshold`` of its maximum (tanh or sigmoid)."""
    check_choice("activation", activation, ("tanh", "sigmoid"))
    check_float("threshold", threshold, 0.0, 1.0, lo_open=True)
    slopes = [1 - h ** 2 if activation == "tanh" else 4 * h * (1 - h) for h in hidden]   # slope / max slope
    return np.array([(slope < threshold).float().mean().item() for slope in slopes])


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
    """log10(std(lr * grad) / std(weight)) of each hidden layer's weight at the last of ``steps`` SGD steps.

    Karpathy's rule of thumb: about -3 is healthy; far below, the layer barely learns. ``model`` is
    trained in place.
    """
    check_float("lr", lr, 0.0, 10.0, lo_open=True)
    check_int("steps", steps, 1, 1000)
    check_int("batch", batch, 1, 100_000)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    ratios: list[float] = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator).to(x.device)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        ratios = [math.log10(max((lr * w.grad).std().item(), 1e-30) / w.detach().std().item()) for w in weights]
        optimizer.step()
    return np.array(ratios)


def update_ratio_profile(data: Splits, activation: str, init: str, depth: int = 20, width: int = 128,
                         lr: float = 0.05, steps: int = 5, seed: int = 0) -> np.ndarray:
    """:func:`update_to_data_ratios` of a fresh ``depth``-layer MLP trained on ``data``."""
    torch.manual_seed(seed)
    model = flow_model(data.n_features, data.n_classes, depth, width, activation, init).to(data.x_train.device)
    return update_to_data_ratios(model, data.x_train, data.y_train, lr=lr, steps=steps, seed=seed)


# --------------------------------------------------------------------------- from initialisation to training
@torch.no_grad()
def forward_spread(data: Splits, activation: str, init: str, depth: int = 20, width: int = 128,
                   seed: int = 0) -> np.ndarray:
    """Per hidden layer of a fresh network, how much its features vary across the training inputs.

    For each feature: its standard deviation over the inputs divided by the size of its mean (float32,
    the training precision); the layer's value is the median over features. Near float32's resolution
    (about 1e-7) the layer's output no longer carries the input: every input gives the same numbers up
    to rounding.
    """
    torch.manual_seed(seed)
    model = flow_model(data.n_features, data.n_classes, depth, width, activation, init).to(data.x_train.device)
    _, hidden = model.forward_with_hidden(data.x_train)
    return np.array([(h.std(0) / h.mean(0).abs().clamp_min(FLOAT32_TINY)).median().item() for h in hidden])


TRAINING_SETTINGS = {"sigmoid + Xavier": dict(activation="sigmoid", init="xavier"),
                     "ReLU + Xavier": dict(activation="relu", init="xavier"),
                     "ReLU + He": dict(activation="relu", init="he"),
                     "pre-norm residual (ReLU + He)": dict(activation="relu", init="he", norm="layer", residual=True)}


def training_table(data: Splits, depth: int = 20, width: int = 128, epochs: int = 10, sgd_lr: float = 0.05,
                   adam_lr: float = 1e-3, seed: int = 0, settings: dict[str, dict[str, Any]] | None = None,
                   adam_settings: Sequence[str] = ("sigmoid + Xavier", "ReLU + Xavier", "ReLU + He"),
                   tiny_eps_settings: Sequence[str] = ("sigmoid + Xavier",)) -> dict:
    """Train each deep network of ``settings`` with plain SGD, those in ``adam_settings`` with Adam, and those in
    ``tiny_eps_settings`` also with Adam at eps = 1e-30 (the control: eps can then never limit a step).

    Returns ``{(setting, optimizer): History}`` with optimizer "sgd", "adam" or "adam, eps 1e-30"; every run
    starts from the same initial weights per setting.
    """
    check_int("epochs", epochs, 1, 200)
    histories = {}
    for name, kwargs in (settings or TRAINING_SETTINGS).items():
        runs = [("sgd", 1e-8)] + [("adam", 1e-8)] * (name in adam_settings) + [("adam", 1e-30)] * (
            name in tiny_eps_settings)
        for optimizer, eps in runs:
            torch.manual_seed(seed)
            model = flow_model(data.n_features, data.n_classes, depth, width, **kwargs).to(data.x_train.device)
            opt = torch.optim.Adam(model.parameters(), lr=adam_lr, eps=eps) if optimizer == "adam" else None
            label = optimizer if eps == 1e-8 else f"{optimizer}, eps {eps:g}"
            histories[(name, label)] = fit(model, data, epochs=epochs, lr=sgd_lr, optimizer="sgd", opt=opt,
                                           batch_size=128, seed=seed, progress=False)
    return histories


def _backward_in(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype,
                 scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy of ``model`` run forward and backward in ``dtype`` with the loss multiplied by ``scale``.

    Returns the weight gradients divided by ``scale`` in float32 (one flat vector) and every hidden unit's
    ReLU decision (output > 0) for every example.
    """
    twin = copy.deepcopy(model).to(dtype)
    logits, hidden = twin.forward_with_hidden(x.to(dtype))
    (nn.functional.cross_entropy(logits.float(), y) * scale).backward()
    gradient = torch.cat([p.grad.float().flatten() / scale for p in twin.parameters() if p.dim() > 1])
    return gradient, torch.cat([(h > 0).flatten() for h in hidden])


def low_precision_gradients(data: Splits, depth: int = 20, width: int = 128, activation: str = "relu",
                            init: str = "xavier", batch: int = 256, seed: int = 0) -> dict[str, dict[str, float]]:
    """The backward pass of one fresh deep MLP in float32, float16 (plain and loss-scaled) and bfloat16.

    For each format, against float32: the share of weight-gradient entries that became exactly 0, the
    share that went the other way (0 in float32, non-zero here; both as a share of float32's non-zero
    entries), the share of ReLU decisions (unit x example) that rounding flipped, the share of entries
    that overflowed, and the relative error of the whole gradient. Underflow only ever makes zeros;
    a flipped ReLU decision makes zeros and non-zeros alike. Loss scaling multiplies the loss by S
    before backward and divides the gradients by S in float32.
    """
    check_int("batch", batch, 1, len(data.x_train))
    torch.manual_seed(seed)
    model = flow_model(data.n_features, data.n_classes, depth, width, activation, init).to(data.x_train.device)
    x, y = data.x_train[:batch], data.y_train[:batch]
    reference, reference_masks = _backward_in(model, x, y, torch.float32)
    nonzero = reference != 0
    results = {}
    for name, dtype, scale in (("float16", torch.float16, 1.0), ("float16, loss x 2^10", torch.float16, 2.0**10),
                               ("bfloat16", torch.bfloat16, 1.0)):
        g, masks = _backward_in(model, x, y, dtype, scale)
        finite = torch.isfinite(g)
        results[name] = {"became 0": (((g == 0) & nonzero).sum() / nonzero.sum()).item(),
                         "became non-zero": (((g != 0) & ~nonzero).sum() / nonzero.sum()).item(),
                         "ReLU decisions flipped": (masks != reference_masks).float().mean().item(),
                         "overflowed": (~finite).float().mean().item(),
                         "relative error": ((torch.where(finite, g, 0.0) - reference).norm() / reference.norm()).item()}
    return results


def dynamic_loss_scaling(data: Splits, depth: int = 20, width: int = 128, activation: str = "relu",
                         init: str = "xavier", batch: int = 256, start: float = 2.0**27, seed: int = 0
                         ) -> tuple[list[dict[str, Any]], float]:
    """Dynamic loss scaling's back-off, as ``torch.amp.GradScaler`` does it, on one float16 backward pass.

    Start at scale ``start``; while the gradient holds an inf or NaN, skip the step and halve the scale.
    Returns one row per try (the scale, whether the gradient overflowed, what the scaler does) and the
    share of gradient entries that became 0 at the scale finally used.
    """
    check_float("start", start, 1.0, 2.0**40)
    torch.manual_seed(seed)
    model = flow_model(data.n_features, data.n_classes, depth, width, activation, init).to(data.x_train.device)
    x, y = data.x_train[:batch], data.y_train[:batch]
    nonzero = _backward_in(model, x, y, torch.float32)[0] != 0
    rows, scale = [], start
    while True:
        g = _backward_in(model, x, y, torch.float16, scale)[0]
        overflowed = not torch.isfinite(g).all().item()
        rows.append({"loss scale": scale, "inf or NaN in the gradient": overflowed,
                     "scaler": "skip the step, halve the scale" if overflowed else "take the step"})
        if not overflowed or scale <= 1.0:
            return rows, (((g == 0) & nonzero).sum() / nonzero.sum()).item()
        scale /= 2


# --------------------------------------------------------------------------- the explorer
def _layer_ranges(layers: Sequence[int]) -> str:
    """'1-14, 20' for layers [1, ..., 14, 20]."""
    ranges, start = [], None
    for k, layer in enumerate(layers):
        start = layer if start is None else start
        if k + 1 == len(layers) or layers[k + 1] != layer + 1:
            ranges.append(f"{start}" if start == layer else f"{start}-{layer}")
            start = None
    return ", ".join(ranges)


def gradient_flow_explorer(depth: int = 20, width: int = 128, activation: str = "relu", init: str = "he",
                           norm: str = "none", residual: bool = False, seed: int = 0):
    """Explorer: per-layer gradient norms of a fresh deep MLP (a batch of 32) as log-scale bars.

    Layers whose gradient overflowed float32 or underflowed to exactly 0 are named in the note and
    marked on the plot; when the forward pass itself overflows, the activation sizes are drawn instead.
    """
    check_int("depth", depth, 2, MAX_FLOW_DEPTH)
    check_int("width", width, 16, MAX_FLOW_WIDTH)
    check_choice("norm", norm, ("none", "layer", "batch"))
    sizes, norms = flow_pass(activation, init, depth, width, None if norm == "none" else norm, bool(residual),
                             batch=32, seed=seed)
    label = f"{activation}, {init} init, norm {norm}{', residual' if residual else ''}"
    layers = np.arange(1, depth + 1)
    overflowed, underflowed = layers[~np.isfinite(norms)].tolist(), layers[norms == 0].tolist()
    subnormal = layers[(norms > 0) & (norms < FLOAT32_TINY)].tolist()
    drawable = np.isfinite(norms) & (norms > 0)
    fig, ax = plotting.figure(f"Gradient flow at initialisation (depth {depth}, width {width})",
                              "layer (1 = input side)", "||dLoss/dh|| (log scale)", figsize=(7.4, 3.8))
    numbers: dict[str, Any] = {}
    notes = []
    if drawable.any():
        ax.bar(layers[drawable], norms[drawable], 0.8, label=label)
        ax.set_yscale("log")
        low, high = norms[drawable].min(), norms[drawable].max()
        ax.set_ylim(low / 10, max(high * 10, low * 1e3))        # at least three decades: noise is not magnified
        numbers["smallest norm"], numbers["largest norm"] = float(low), float(high)
    if drawable[0] and drawable[-1]:
        numbers["first / last layer"] = flow_ratio(norms)
    forward_overflow = not np.isfinite(sizes).all()
    if forward_overflow:
        first = layers[~np.isfinite(sizes)][0]
        notes.append(f"the forward pass overflowed float32 (above {FLOAT32_MAX:.1e}) from layer {first} on, so the "
                     f"loss is not a number and the gradient is undefined in all {depth} layers; the plot shows "
                     "how the activations grew until then")
    elif overflowed:
        notes.append(f"gradients overflowed float32 (above {FLOAT32_MAX:.1e}) in {len(overflowed)} of {depth} "
                     f"layers ({_layer_ranges(overflowed)})")
    if underflowed:
        notes.append(f"gradients underflowed to exactly 0 in layers {_layer_ranges(underflowed)}")
    if subnormal:
        notes.append(f"gradients fell below float32's smallest normal number ({FLOAT32_TINY:.1e}) in layers "
                     f"{_layer_ranges(subnormal)}: what is left there is imprecise, and a little smaller is exactly 0")
    for layer in ([] if forward_overflow else overflowed) + underflowed + subnormal:
        ax.axvline(layer, color="#D55E00", alpha=0.25, lw=4)
    if not drawable.any():
        finite = np.isfinite(sizes) & (sizes > 0)
        ax.plot(layers[finite], sizes[finite], "o-", color="#D55E00", label="forward activation ||h|| (no gradient)")
        ax.set_yscale("log")
        ax.set_ylabel("||h|| of the forward pass (log scale)")
    if notes:
        shaded = " (shaded on the plot)" if underflowed or subnormal or (overflowed and not forward_overflow) else ""
        numbers["note"] = "; ".join(notes)[0].upper() + "; ".join(notes)[1:] + shaded + "."
        numbers["layers with no usable gradient"] = len(overflowed) + len(underflowed) + len(subnormal)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig, numbers
