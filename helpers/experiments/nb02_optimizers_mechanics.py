"""Notebook 02's mechanism experiments, each small and exact or nearly so: the from-scratch optimizers
against torch.optim, the memory an optimizer keeps, Adam's first step and its epsilon, Adam's average step
under gradient noise, L2 vs decoupled weight decay, rare tokens, and the "Your turn" update-rule checkers.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from matplotlib.ticker import NullFormatter
from torch import nn

from helpers import exercises
from helpers.plotting import PALETTE, figure
from helpers.scratch import optimizers
from helpers.train import make_optimizer
from helpers.validation import check_choice, check_float, check_int

NAMES = ("SGD", "RMSprop", "Adam", "AdamW")


# --------------------------------------------------------------------------------------------
# From scratch vs torch.optim
# --------------------------------------------------------------------------------------------
def difference_from_torch_optim(name: str, steps: int = 30, seed: int = 0, **hyper) -> float:
    """Largest |w_scratch - w_torch.optim| after ``steps`` updates of two identical float64 networks.

    Tens of steps from a far start, not hundreds: near an optimum two correct float64 runs drift apart
    chaotically, which would hide nothing and prove nothing.
    """
    check_choice("name", name, NAMES)
    check_int("steps", steps, 1, 1000)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    x = torch.randn(64, 6, generator=generator, dtype=torch.float64)
    y = torch.randn(64, 1, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    scratch = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    reference = copy.deepcopy(scratch)
    pairs = [(scratch, getattr(optimizers, name)(scratch.parameters(), **hyper)),
             (reference, getattr(torch.optim, name)(reference.parameters(), **hyper))]
    for _ in range(steps):
        for model, opt in pairs:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    gaps = [(a - b).abs().max() for a, b in zip(scratch.parameters(), reference.parameters())]
    return torch.stack(gaps).max().item()                              # NaN anywhere stays NaN


MATCH_CASES: list[tuple[str, dict]] = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=1e-3)),
    ("RMSprop", dict(lr=1e-3)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, momentum=0.9, centered=True, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, betas=(0.5, 0.9), weight_decay=0.1, eps=1e-6)),
]


def match_table(steps: int = 30, seed: int = 0) -> list[dict]:
    """:func:`difference_from_torch_optim` for every case of ``MATCH_CASES``: one row per optimizer and setting."""
    return [{"optimizer": name, "settings": ", ".join(f"{k}={v}" for k, v in hyper.items()),
             f"largest difference after {steps} steps": difference_from_torch_optim(name, steps, seed, **hyper)}
            for name, hyper in MATCH_CASES]


def state_memory(model: nn.Module, names: Sequence[str] = ("sgd", "momentum", "rmsprop", "adam", "adamw")
                 ) -> list[dict]:
    """Bytes each optimizer keeps between steps, as a multiple of the model's parameter bytes.

    Measured after one step (state is created lazily) for ``torch.optim`` and for the scratch optimizers.
    """
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    rows = []
    for name in names:
        row = {"optimizer": name}
        for label, library in (("torch.optim", torch.optim), ("from scratch", optimizers)):
            copy_of_model = copy.deepcopy(model)
            opt = make_optimizer(name, list(copy_of_model.parameters()), 1e-3, library=library)
            for p in copy_of_model.parameters():
                p.grad = torch.ones_like(p)
            opt.step()
            state_bytes = sum(value.numel() * value.element_size() for state in opt.state.values()
                              for value in state.values() if torch.is_tensor(value))
            row[f"{label} state / parameters"] = state_bytes / parameter_bytes
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Adam's step: its first step, its epsilon, and its average step under noise
# --------------------------------------------------------------------------------------------
def first_step_sizes(grad_scales: Sequence[float], lr: float = 1e-2, eps_values: Sequence[float] = (1e-8,)) -> dict:
    """|change| of each coordinate after ONE step of SGD and of Adam (one entry per ``eps``), from zero."""
    check_float("lr", lr, 1e-8, 10.0)
    grad = torch.tensor([check_float("grad_scales", s, 1e-8, 1e6) for s in grad_scales], dtype=torch.float64)
    steps = {"SGD": lambda w: optimizers.SGD([w], lr=lr)}
    steps |= {f"Adam, eps {eps:g}": (lambda w, eps=eps: optimizers.Adam([w], lr=lr, eps=check_float("eps", eps, 0, 1)))
              for eps in eps_values}
    sizes = {}
    for name, build in steps.items():
        w = torch.zeros_like(grad, requires_grad=True)
        w.grad = grad.clone()
        build(w).step()
        sizes[name] = w.detach().abs().numpy()
    return sizes


def plot_first_steps(grad_scales: Sequence[float], sizes: dict[str, np.ndarray], lr: float):
    """Size of the first step against the size of the gradient, log-log, one line per optimizer."""
    fig, ax = figure(f"The size of the first step, lr = {lr:g}", "|gradient| of the coordinate (log scale)",
                     "|change in the weight| (log scale)", figsize=(9.5, 3.8))
    for colour, marker, (name, size) in zip(PALETTE, "osD^", sizes.items()):
        ax.loglog(grad_scales, size, marker + "-", color=colour, label=name)
    ax.axhline(lr, color="grey", ls=":", lw=1, label="the learning rate")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _noisy_gradient_run(opt_factory: Callable, start: torch.Tensor, signal: torch.Tensor, noise: torch.Tensor,
                        steps: int, seed: int) -> torch.Tensor:
    """Weights after ``steps`` steps whose data gradient is ``signal + noise * N(0, 1)``, fresh each step."""
    generator = torch.Generator().manual_seed(seed)
    w = start.clone().requires_grad_(True)
    opt = opt_factory([w])
    for _ in range(steps):
        w.grad = signal + noise * torch.randn(w.shape, generator=generator, dtype=w.dtype)
        opt.step()
    return w.detach()


def average_step_under_noise(noise_levels: Sequence[float], lr: float = 1e-3, steps: int = 400,
                             replicas: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Net progress per step, in units of ``lr``, when the gradient is 1 + sigma * noise.

    SGD's average step is the mean gradient whatever the noise. Adam's is close to the gradient's
    signal-to-noise ratio 1 / sqrt(1 + sigma^2): m_hat averages the noise away, sqrt(v_hat) measures it.
    """
    check_int("steps", steps, 10, 100_000)
    check_int("replicas", replicas, 1, 100_000)
    sigma = torch.tensor([check_float("noise_levels", s, 0.0, 1e4) for s in noise_levels], dtype=torch.float64)
    noise = sigma.repeat_interleave(replicas)                            # (levels * replicas,)
    start, signal = torch.zeros_like(noise), torch.ones_like(noise)
    progress = {}
    for name, factory in (("SGD", lambda p: optimizers.SGD(p, lr=lr)), ("Adam", lambda p: optimizers.Adam(p, lr=lr))):
        moved = -_noisy_gradient_run(factory, start, signal, noise, steps, seed) / (steps * lr)
        progress[name] = moved.view(len(sigma), replicas).mean(1).numpy()
    progress["signal-to-noise 1/sqrt(1+sigma^2)"] = (1 / torch.sqrt(1 + sigma ** 2)).numpy()
    return progress


def plot_average_step(noise_levels: Sequence[float], progress: dict[str, np.ndarray]):
    """Net progress per step (in units of the rate) against the gradient's noise, with the SNR curve."""
    fig, ax = figure("Average progress per step when the gradient is 1 + noise", "noise sigma (log scale)",
                     "net progress per step / learning rate", figsize=(9.5, 3.8))
    fine = np.logspace(np.log10(min(noise_levels)), np.log10(max(noise_levels)), 100)
    ax.semilogx(fine, 1 / np.sqrt(1 + fine ** 2), color="black", ls=":", lw=1.2, label="1 / sqrt(1 + sigma²)")
    for colour, name in zip(PALETTE, ("SGD", "Adam")):
        ax.semilogx(noise_levels, progress[name], "o", color=colour, ms=7, label=f"{name}, measured")
    ax.set_ylim(0, 1.2)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------------------------
# L2 in Adam vs decoupled weight decay (AdamW)
# --------------------------------------------------------------------------------------------
DECAY_LABELS = {"Adam": "Adam + L2", "AdamW": "AdamW"}


def _with_decay(name: str, lr: float, weight_decay: float) -> Callable:
    """A factory ``params -> optimizer`` for Adam (L2 in the gradient) or AdamW (decoupled) with this decay."""
    return lambda params: getattr(optimizers, name)(params, lr=lr, weight_decay=weight_decay)


def shrinkage_at_zero_gradient(magnitudes: Sequence[float] = (0.01, 1.0, 100.0), lr: float = 1e-3,
                               weight_decay: float = 0.1, steps: int = 100) -> dict[str, np.ndarray]:
    """Percentage by which each weight shrinks in ``steps`` steps when the data gradient is exactly zero."""
    check_float("lr", lr, 1e-8, 1.0)
    check_float("weight_decay", weight_decay, 0.0, 100.0, lo_open=True)
    check_int("steps", steps, 1, 100_000)
    start = torch.tensor([check_float("magnitudes", m, 1e-6, 1e6) for m in magnitudes], dtype=torch.float64)
    zero = torch.zeros_like(start)
    shrink = {}
    for name, label in DECAY_LABELS.items():
        end = _noisy_gradient_run(_with_decay(name, lr, weight_decay), start, zero, zero, steps, seed=0)
        shrink[label] = (100 * (1 - end / start)).numpy()
    return shrink


def shrinkage_under_noise(noise_levels: Sequence[float] = (1e-3, 0.1, 10.0), lr: float = 1e-3,
                          weight_decay: float = 0.1, steps: int = 1000, replicas: int = 200,
                          seed: int = 0) -> dict[str, np.ndarray]:
    """Mean percentage by which weights starting at 1 shrink when the data gradient is pure noise of size sigma.

    The noise has mean zero, so any systematic shrinkage is the decay's. AdamW decays every weight by
    1 - (1 - lr wd)^steps; Adam + L2 divides the decay by the running RMS of the (noisy) gradient.
    """
    check_float("lr", lr, 1e-8, 1.0)
    check_float("weight_decay", weight_decay, 0.0, 100.0, lo_open=True)
    check_int("steps", steps, 1, 100_000)
    check_int("replicas", replicas, 1, 100_000)
    sigma = torch.tensor([check_float("noise_levels", s, 0.0, 1e4) for s in noise_levels], dtype=torch.float64)
    noise = sigma.repeat_interleave(replicas)
    start = torch.ones_like(noise)
    shrink = {}
    for name, label in DECAY_LABELS.items():
        zero = torch.zeros_like(noise)
        end = _noisy_gradient_run(_with_decay(name, lr, weight_decay), start, zero, noise, steps, seed)
        shrink[label] = (100 * (1 - end.view(len(sigma), replicas).mean(1))).numpy()
    return shrink


def plot_shrinkage(magnitudes: Sequence[float], at_zero: dict[str, np.ndarray], noise_levels: Sequence[float],
                   under_noise: dict[str, np.ndarray]):
    """How much weight decay shrank the weights: by their size (zero gradient) and by gradient noise."""
    fig, (left, right) = figure("Weight decay in Adam: L2 term vs decoupled (AdamW)", "initial weight (log scale)",
                                "weight shrunk by (%, log scale)", ncols=2, figsize=(11, 3.8))
    right.set_xlabel("gradient noise sigma, weights starting at 1 (log scale)")
    for colour, name in zip(PALETTE, ("Adam + L2", "AdamW")):
        left.loglog(magnitudes, at_zero[name], "o-", color=colour, label=name)
        right.loglog(noise_levels, under_noise[name], "o-", color=colour, label=name)
    left.set_title("zero data gradient", fontsize=10)
    right.set_title("pure-noise data gradient", fontsize=10)
    for ax in (left, right):
        ax.set_ylim(0.05, 200)
        ax.yaxis.set_minor_formatter(NullFormatter())
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------------------------
# Rare tokens: why language models are trained with Adam
# --------------------------------------------------------------------------------------------
def rare_token_errors(optimizer: str, lr: float, vocabulary: int = 64, steps: int = 400, batch_size: int = 32,
                      tokens_per_example: int = 8, zipf: bool = True, seed: int = 0) -> dict[str, float]:
    """Fit one weight per token (an embedding of width 1) to targets ``sum of the tokens' true weights``.

    Tokens follow Zipf's law (frequency of the k-th token ~ 1/k), so the weight of a rare token gets a
    gradient only in the few batches that contain it. Returns the relative error of the learned weights
    for the 10 most frequent tokens and for the rarer half, and the mean training loss of the last 50 steps.
    """
    check_choice("optimizer", optimizer, ("momentum", "adam"))
    check_int("vocabulary", vocabulary, 20, 10_000)
    check_int("steps", steps, 60, 100_000)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    frequency = 1 / torch.arange(1, vocabulary + 1, dtype=torch.float64) ** (1.0 if zipf else 0.0)
    true_weights = torch.randn(vocabulary, generator=generator, dtype=torch.float64)
    w = torch.zeros(vocabulary, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(optimizer, [w], lr, library=optimizers)
    losses = []
    for _ in range(steps):
        tokens = torch.multinomial(frequency, batch_size * tokens_per_example, replacement=True, generator=generator)
        counts = torch.zeros(batch_size, vocabulary, dtype=torch.float64)
        counts.view(-1).index_add_(0, torch.arange(batch_size).repeat_interleave(tokens_per_example) * vocabulary
                                   + tokens, torch.ones(len(tokens), dtype=torch.float64))   # (B, vocabulary)
        loss = 0.5 * ((counts @ w - counts @ true_weights) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    error = (w.detach() - true_weights).abs()
    rare = slice(vocabulary // 2, None)
    return {"frequent error": float(error[:10].norm() / true_weights[:10].norm()),
            "rare error": float(error[rare].norm() / true_weights[rare].norm()),
            "final loss": float(np.mean(losses[-50:]))}


def rare_token_comparison(lrs: dict[str, Sequence[float]], seed: int = 0, **options) -> dict[str, dict]:
    """Each optimizer at the rate of its grid with the lowest final training loss (a fair, tuned comparison)."""
    best = {}
    for optimizer, grid in lrs.items():
        runs = {lr: rare_token_errors(optimizer, lr, seed=seed, **options) for lr in grid}
        lr = min(runs, key=lambda rate: runs[rate]["final loss"] if np.isfinite(runs[rate]["final loss"]) else np.inf)
        best[optimizer] = {"lr": lr, **runs[lr]}
    return best


# --------------------------------------------------------------------------------------------
# "Your turn": update rules written by the learner, checked against torch.optim
# --------------------------------------------------------------------------------------------
def _check_update_rule(update: Callable, reference: Callable, hyper: tuple, seed: int, name: str, hint: str,
                       stub: str) -> bool:
    """Run ``update(w, grad, state, *hyper) -> (w, state)`` beside a torch.optim optimizer for 20 steps.

    Both minimise the same diagonal quadratic from the same start; the learner's state starts at zero.
    """
    generator = torch.Generator().manual_seed(seed)
    curvature = torch.rand(5, generator=generator, dtype=torch.float64) * 10 + 0.5
    w_reference = torch.randn(5, generator=generator, dtype=torch.float64).requires_grad_(True)
    opt = reference([w_reference])
    w, state = w_reference.detach().clone(), torch.zeros(5, dtype=torch.float64)
    for step in range(1, 21):
        w_reference.grad = curvature * w_reference.detach()
        opt.step()
        result = exercises.attempt(update, w.clone(), curvature * w, state.clone(), *hyper, what=stub)
        if result is exercises.NOT_ATTEMPTED:
            return False
        if not (isinstance(result, tuple) and len(result) == 2 and all(torch.is_tensor(r) for r in result)):
            return exercises.wrong(f"{stub} must return a pair of tensors (w, state), got {type(result).__name__}")
        w, state = result
        if not torch.allclose(w, w_reference.detach(), atol=1e-10):
            gap = (w - w_reference.detach()).abs().max().item()
            return exercises.wrong(f"after step {step} your weights differ from {name} by {gap:.3g}.", hint)
    return exercises.correct(f"your update matches {name} for 20 steps.")


def check_nesterov(update: Callable | None) -> bool:
    """Check ``update(w, grad, velocity, lr, momentum) -> (w, velocity)`` against SGD(nesterov=True)."""
    return _check_update_rule(
        update, lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True), (0.05, 0.9), 0,
        "torch.optim.SGD(nesterov=True)", "update the velocity first (v = momentum * v + grad), then step along "
        "grad + momentum * v, not along v.", "nesterov_update")


def check_rmsprop(update: Callable | None) -> bool:
    """Check ``update(w, grad, square_avg, lr, alpha, eps) -> (w, square_avg)`` against torch.optim.RMSprop."""
    return _check_update_rule(
        update, lambda params: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-8), (0.01, 0.9, 1e-8), 1,
        "torch.optim.RMSprop", "s = alpha * s + (1 - alpha) * g**2, then w = w - lr * g / (sqrt(s) + eps): divide "
        "by the ROOT mean square, with eps added after the root.", "rmsprop_update")
