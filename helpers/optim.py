"""Optimizers from scratch, and the experiments of notebook 02 (optimizers and schedules).

``SGD``, ``RMSprop``, ``Adam`` and ``AdamW`` are ``torch.optim.Optimizer`` subclasses whose
constructors take the same arguments and defaults as their ``torch.optim`` namesakes (the
implementation switches ``foreach``/``fused``/``capturable``/``differentiable`` are left out:
they change speed, not the maths).  Each ``step`` is a plain loop over parameters that reads
like the update equations.  The rest of the module holds the notebook's experiments: trajectories
on a quadratic and on Rosenbrock, iterations to a tolerance, Adam's first step, L2 vs decoupled
weight decay, learning-rate sweeps, schedules, a learning-rate range test, explorers and checkers.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from helpers.data import Splits
from helpers.validation import check_choice, check_float, check_int
from helpers.config import one_thread

Params = Iterable[torch.Tensor] | Iterable[dict]
Progress = Callable[[float], None] | None


def _check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
    return (check_float("betas[0]", betas[0], 0.0, 1.0, hi_open=True),
            check_float("betas[1]", betas[1], 0.0, 1.0, hi_open=True))


# --------------------------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------------------------
class ScratchOptimizer(Optimizer):
    """The bookkeeping every optimizer here shares; a subclass writes only ``update``, the maths.

    ``step`` evaluates the optional closure, then calls ``update(w, g, group, state)`` for every
    parameter with a gradient, where ``g`` is already negated for ``maximize=True``.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    self.update(w, -w.grad if group["maximize"] else w.grad, group, self.state[w])
        return loss

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        """Change ``w`` in place from its gradient ``g``, its group's settings and its own state."""
        raise NotImplementedError


class SGD(ScratchOptimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay.

    g = grad + wd * w;  v = mu * v + (1 - dampening) * g  (v = g on the first step);
    d = g + mu * v if nesterov else v;  w = w - lr * d.
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        check_float("lr", lr, 0.0, 1e6)
        check_float("momentum", momentum, 0.0, 1.0, hi_open=True)
        check_float("dampening", dampening, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, 1e6)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        """v = mu v + (1 - dampening) g;  w = w - lr (g + mu v if Nesterov else v)."""
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w                   # L2 term in the gradient
        if mu:
            if "velocity" not in state:
                state["velocity"] = g.clone()                   # v_1 = g_1
            else:
                state["velocity"] = mu * state["velocity"] + (1 - damp) * g
            v = state["velocity"]
            g = g + mu * v if group["nesterov"] else v          # look ahead, or heavy ball
        w.sub_(lr * g)                                          # w <- w - lr * d


class RMSprop(ScratchOptimizer):
    """RMSprop (Hinton 2012): divide the gradient by a running root-mean-square of its history.

    s = alpha * s + (1 - alpha) * g^2;  w = w - lr * g / (sqrt(s) + eps)
    (``centered`` subtracts the squared running mean of g; ``momentum`` smooths the step).
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        check_float("lr", lr, 0.0, 1e6)
        check_float("alpha", alpha, 0.0, 1.0)
        check_float("eps", eps, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, 1e6)
        check_float("momentum", momentum, 0.0, 1.0, hi_open=True)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        """s = alpha s + (1 - alpha) g^2;  w = w - lr g / (sqrt(s) + eps)."""
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        if not state:
            state.update(square_avg=torch.zeros_like(w), grad_avg=torch.zeros_like(w),
                         velocity=torch.zeros_like(w))
        s = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
        if group["centered"]:
            m = state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
            s = s - m * m                                      # variance instead of raw 2nd moment
        scaled = g / (s.sqrt() + eps)
        if mu:
            scaled = state["velocity"] = mu * state["velocity"] + scaled
        w.sub_(lr * scaled)


class Adam(ScratchOptimizer):
    """Adam (Kingma & Ba 2015); ``weight_decay`` adds an L2 term to the gradient, as torch.optim.Adam.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m^ = m / (1-b1^t);  v^ = v / (1-b2^t);
    w = w - lr * m^ / (sqrt(v^) + eps).
    """

    decoupled = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        check_float("lr", lr, 0.0, 1e6)
        betas = _check_betas(betas)
        check_float("eps", eps, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, 1e6)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w = w - lr m^ / (sqrt(v^) + eps)."""
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd and self.decoupled:
            w.mul_(1 - lr * wd)                                 # AdamW: shrink w directly
        elif wd:
            g = g + wd * w                                      # Adam: L2 term in the gradient
        if not state:
            state.update(t=0, m=torch.zeros_like(w), v=torch.zeros_like(w), v_max=torch.zeros_like(w))
        state["t"] += 1
        t = state["t"]
        m = state["m"] = b1 * state["m"] + (1 - b1) * g         # first moment (momentum)
        v = state["v"] = b2 * state["v"] + (1 - b2) * g * g     # second moment (scale)
        if group["amsgrad"]:
            v = state["v_max"] = torch.maximum(state["v_max"], v)
        m_hat = m / (1 - b1 ** t)                               # bias corrections
        v_hat = v / (1 - b2 ** t)
        w.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, w <- w (1 - lr wd) - lr m^/(sqrt(v^)+eps)."""

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


SCRATCH = {"SGD": SGD, "RMSprop": RMSprop, "Adam": Adam, "AdamW": AdamW}
TORCH = {"SGD": torch.optim.SGD, "RMSprop": torch.optim.RMSprop, "Adam": torch.optim.Adam,
         "AdamW": torch.optim.AdamW}


def compare_with_torch(name: str, steps: int = 100, seed: int = 0, **hyper) -> float:
    """Largest |w_ours - w_torch| after ``steps`` updates of a small float64 net on random data."""
    check_choice("name", name, SCRATCH)
    check_int("steps", steps, 1, 10_000)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    x, y = torch.randn(64, 6, generator=gen, dtype=torch.float64), torch.randn(64, 1, generator=gen, dtype=torch.float64)
    torch.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    ref = copy.deepcopy(ours)
    opt_ours, opt_ref = SCRATCH[name](ours.parameters(), **hyper), TORCH[name](ref.parameters(), **hyper)
    for _ in range(steps):
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    return max((a - b).abs().max().item() for a, b in zip(ours.parameters(), ref.parameters()))


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


def match_table(steps: int = 100, seed: int = 0) -> list[dict]:
    """``compare_with_torch`` over :data:`MATCH_CASES`: one row per optimizer and setting."""
    return [{"optimizer": name, "settings": ", ".join(f"{k}={v}" for k, v in hyper.items()),
             "max |difference|": compare_with_torch(name, steps, seed, **hyper)} for name, hyper in MATCH_CASES]


# --------------------------------------------------------------------------------------------
# Geometry: quadratics, Rosenbrock, trajectories
# --------------------------------------------------------------------------------------------
def quadratic(kappa: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """f(w) = 0.5 w^T A w with A = diag(1, kappa): the minimum is at 0, the condition number kappa."""
    a = torch.tensor([1.0, check_float("kappa", kappa, 1.0, 1e6)], dtype=torch.float64)
    return lambda w: 0.5 * (a * w * w).sum(-1)


def rosenbrock(w: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's banana valley (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    x, y = w[..., 0], w[..., 1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


OPTIMIZER_NAMES = ("gd", "momentum", "nesterov", "rmsprop", "adam")


def make_optimizer(name: str, params: Params, lr: float, momentum: float = 0.9, beta2: float = 0.999,
                   weight_decay: float = 0.0) -> Optimizer:
    """One of this module's optimizers by short name: gd, momentum, nesterov, rmsprop, adam, adamw."""
    check_choice("optimizer", name, OPTIMIZER_NAMES + ("adamw",))
    if name == "gd":
        return SGD(params, lr=lr, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSprop(params, lr=lr, alpha=beta2, weight_decay=weight_decay)
    cls = Adam if name == "adam" else AdamW
    return cls(params, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)


def trajectory(loss_fn: Callable[[torch.Tensor], torch.Tensor], start: Sequence[float], optimizer: str,
               lr: float, steps: int, momentum: float = 0.9, beta2: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """Run ``optimizer`` from ``start`` on a 2-D loss; return the path (steps+1, 2) and the losses."""
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 100.0, lo_open=True)
    w = torch.tensor(list(start), dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(optimizer, [w], lr, momentum, beta2)
    path, losses = [w.detach().clone()], []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(w)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > 1e12:
            break
        loss.backward()
        opt.step()
        path.append(w.detach().clone())
    losses.append(loss_fn(w.detach()).item())
    return torch.stack(path).numpy(), np.array(losses)


def optimal_settings(kappa: float, mu: float = 1.0) -> dict[str, float]:
    """Best fixed steps on a quadratic with curvatures in [mu, kappa*mu] (Goh 2017, Polyak 1964).

    Gradient descent: lr = 2/(L+mu), rate (kappa-1)/(kappa+1).  Heavy-ball momentum:
    lr = 4/(sqrt(L)+sqrt(mu))^2, beta = ((sqrt(kappa)-1)/(sqrt(kappa)+1))^2, rate sqrt(beta).
    """
    kappa = check_float("kappa", kappa, 1.0, 1e6)
    mu = check_float("mu", mu, 0.0, 1e6, lo_open=True)
    big = kappa * mu
    root = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    return {"gd_lr": 2 / (big + mu), "gd_rate": (kappa - 1) / (kappa + 1),
            "momentum_lr": 4 / (math.sqrt(big) + math.sqrt(mu)) ** 2, "momentum_beta": root ** 2,
            "momentum_rate": root}


def error_curve(kappa: float, method: str, steps: int, tol: float = 0.0) -> np.ndarray:
    """||w_t - w*|| / ||w_0 - w*|| for t = 0..steps on diag(1, kappa) from (1, 1), at the optimal step.

    Stops early once the error is below ``tol`` (0 runs all ``steps``).
    """
    check_choice("method", method, ("gd", "momentum"))
    check_int("steps", steps, 1, 1_000_000)
    best = optimal_settings(kappa)
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = (SGD([w], lr=best["gd_lr"]) if method == "gd"
           else SGD([w], lr=best["momentum_lr"], momentum=best["momentum_beta"]))
    scale = torch.tensor([1.0, kappa], dtype=torch.float64)
    start, errors = w.detach().norm().item(), [1.0]
    for _ in range(steps):
        w.grad = scale * w.detach()                                    # gradient of 0.5 w^T A w
        opt.step()
        errors.append(w.detach().norm().item() / start)
        if errors[-1] < tol:
            break
    return np.array(errors)


def iterations_to_tolerance(kappa: float, method: str, tol: float = 1e-6, max_iters: int = 200_000) -> int:
    """Steps until ||w_t - w*|| / ||w_0 - w*|| < tol on diag(1, kappa) from (1, 1), at the optimal step."""
    check_float("tol", tol, 1e-14, 0.5)
    check_int("max_iters", max_iters, 1, 1_000_000)
    errors = error_curve(kappa, method, max_iters, tol)
    return len(errors) - 1 if errors[-1] < tol else max_iters


def plot_error_curves(kappa: float, steps: int):
    """Relative error against iteration for GD and heavy-ball momentum at their optimal steps."""
    from helpers.plotting import figure

    fig, ax = figure(f"Optimal gradient descent vs optimal momentum, kappa = {kappa:g}", "iteration",
                     "relative error ||w - w*|| / ||w0 - w*|| (log scale)")
    best = optimal_settings(kappa)
    for method in ("gd", "momentum"):
        errors = error_curve(kappa, method, steps)
        ax.semilogy(np.maximum(errors, 1e-17), label=f"{method} (measured)")
        ax.semilogy(best[f"{method}_rate"] ** np.arange(len(errors)), ":", color="grey", lw=1)
    ax.axhline(1e-6, color="black", ls="--", lw=1, label="tolerance 1e-6")
    ax.set_ylim(1e-10, 10)
    ax.plot([], [], ":", color="grey", label="predicted rate^t")
    ax.legend()
    return fig


def convergence_table(kappas: Sequence[float] = (10, 100, 1000), tol: float = 1e-6) -> list[dict]:
    """Iterations to ``tol`` for GD and momentum at their optimal steps, per condition number."""
    rows = []
    for kappa in kappas:
        gd, mom = iterations_to_tolerance(kappa, "gd", tol), iterations_to_tolerance(kappa, "momentum", tol)
        best = optimal_settings(kappa)
        rows.append({"kappa": kappa, "gd_iters": gd, "momentum_iters": mom, "speed-up": gd / mom,
                     "sqrt_kappa": math.sqrt(kappa),
                     "gd_predicted": math.log(tol) / math.log(best["gd_rate"]),
                     "momentum_predicted": math.log(tol) / math.log(best["momentum_rate"])})
    return rows


SURFACES = ("quadratic", "rosenbrock")
STARTS = {"quadratic": (-1.0, 0.8), "rosenbrock": (-1.2, 1.0)}


def _contours(ax, loss_fn: Callable, surface: str, paths: dict[str, np.ndarray]) -> None:
    if surface == "quadratic":
        xs, ys = np.linspace(-1.2, 1.2, 80), np.linspace(-1.5, 1.5, 70)
    else:
        xs, ys = np.linspace(-2.0, 2.0, 80), np.linspace(-1.0, 3.0, 70)
    gx, gy = np.meshgrid(xs, ys)
    z = loss_fn(torch.tensor(np.stack([gx, gy], -1))).numpy()
    ax.contour(gx, gy, np.log10(z + 1e-3), levels=14, colors="grey", linewidths=0.6)
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1.2, label=name)
    ax.plot(*((0, 0) if surface == "quadratic" else (1, 1)), "k*", ms=12, label="minimum")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.legend(fontsize=8, loc="lower right")


def plot_trajectories(surface: str, runs: dict[str, tuple[np.ndarray, np.ndarray]], kappa: float = 10.0,
                      title: str | None = None):
    """Paths on the contour plot (left) and loss against step on a log scale (right)."""
    from helpers.plotting import figure

    check_choice("surface", surface, SURFACES)
    loss_fn = quadratic(kappa) if surface == "quadratic" else rosenbrock
    fig, (ax_path, ax_loss) = figure(title or f"Optimizer paths on the {surface}", "w1 (parameter units)",
                                     "w2 (parameter units)", ncols=2, figsize=(10, 4.2))
    _contours(ax_path, loss_fn, surface, {name: path for name, (path, _) in runs.items()})
    for name, (_, losses) in runs.items():
        ax_loss.semilogy(np.maximum(losses, 1e-16), label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (log scale, no units)")
    ax_loss.legend(fontsize=8)
    return fig


def explore_trajectory(optimizer: str = "momentum", surface: str = "quadratic", lr: float = 0.05,
                       momentum: float = 0.9, beta2: float = 0.999, kappa: float = 20.0,
                       steps: int = 100, compare_gd: bool = True):
    """Explorer: one optimizer's path on a quadratic (condition number ``kappa``) or Rosenbrock."""
    check_choice("optimizer", optimizer, OPTIMIZER_NAMES)
    check_choice("surface", surface, SURFACES)
    check_float("lr", lr, 1e-5, 10.0)
    check_float("momentum", momentum, 0.0, 0.999)
    check_float("beta2", beta2, 0.5, 0.9999)
    check_float("kappa", kappa, 1.0, 1000.0)
    check_int("steps", steps, 1, 2000)
    loss_fn = quadratic(kappa) if surface == "quadratic" else rosenbrock
    runs = {optimizer: trajectory(loss_fn, STARTS[surface], optimizer, lr, steps, momentum, beta2)}
    if compare_gd and optimizer != "gd":
        runs["gd (same lr)"] = trajectory(loss_fn, STARTS[surface], "gd", lr, steps)
    fig = plot_trajectories(surface, runs, kappa, f"{optimizer} on the {surface}")
    path, losses = runs[optimizer]
    target = np.array((0.0, 0.0) if surface == "quadratic" else (1.0, 1.0))
    numbers = {"final loss": float(losses[-1]), "distance to minimum": float(np.linalg.norm(path[-1] - target)),
               "diverged": bool(not np.isfinite(losses[-1]) or losses[-1] > 1e6)}
    return fig, numbers


# --------------------------------------------------------------------------------------------
# Adam's first step; L2 vs decoupled weight decay
# --------------------------------------------------------------------------------------------
def first_step_sizes(grad_scales: Sequence[float] = (1e-3, 1e-1, 1e1, 1e3), lr: float = 1e-2) -> dict[str, np.ndarray]:
    """|change| of each coordinate after ONE step of SGD and of Adam, for gradients of very different scales."""
    check_float("lr", lr, 1e-8, 10.0)
    grad = torch.tensor([check_float("grad_scales", s, 1e-6, 1e6) for s in grad_scales], dtype=torch.float64)
    sizes = {}
    for name, cls in (("sgd", SGD), ("adam", Adam)):
        w = torch.zeros_like(grad, requires_grad=True)
        w.grad = grad.clone()
        cls([w], lr=lr).step()
        sizes[name] = w.detach().abs().numpy()
    return sizes


def decay_demo(magnitudes: Sequence[float] = (0.01, 1.0, 100.0), lr: float = 1e-3, weight_decay: float = 0.1,
               steps: int = 100) -> dict[str, np.ndarray]:
    """Percentage by which each weight shrinks in ``steps`` steps with a ZERO data gradient."""
    check_float("lr", lr, 1e-8, 1.0)
    check_float("weight_decay", weight_decay, 0.0, 100.0, lo_open=True)
    check_int("steps", steps, 1, 100_000)
    start = torch.tensor([check_float("magnitudes", m, 1e-6, 1e6) for m in magnitudes], dtype=torch.float64)
    shrink = {}
    for name, cls in (("Adam + L2", Adam), ("AdamW", AdamW)):
        w = start.clone().requires_grad_(True)
        opt = cls([w], lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            w.grad = torch.zeros_like(w)                                # the data says nothing
            opt.step()
        shrink[name] = 100 * (1 - w.detach().abs() / start).numpy()
    return shrink


# --------------------------------------------------------------------------------------------
# Training on MNIST-1D: sweeps, timing, weight-decay grids
# --------------------------------------------------------------------------------------------
MODELS = ("mlp", "cnn")


def build_model(kind: str, data: Splits, width: int = 64, channels: int = 16, seed: int = 0) -> nn.Module:
    """A fresh MLP (two hidden layers of ``width``) or 1-D CNN, initialised from ``seed``, on the data's device."""
    from helpers.models import cnn1d, mlp

    check_choice("kind", kind, MODELS)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = (mlp(data.n_features, data.n_classes, width=width, depth=2) if kind == "mlp"
             else cnn1d(data.n_classes, channels=channels, length=data.n_features))
    return model.to(data.x_train.device)




def train(kind: str, data: Splits, optimizer: str, lr: float, epochs: int, weight_decay: float = 0.0,
          schedule: str = "constant", warmup_fraction: float = 0.1, batch_size: int = 128, width: int = 64,
          channels: int = 16, seed: int = 0, callbacks: Sequence = ()):
    """Train a fresh model with one of this module's optimizers (on one CPU thread); return (history, model)."""
    from helpers.train import fit

    check_int("epochs", epochs, 1, 1000)
    check_float("lr", lr, 1e-6, 10.0)
    model = build_model(kind, data, width, channels, seed)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(data.y_train) / batch_size)
    sched = schedule_builder(schedule, steps, warmup_fraction) if schedule != "constant" else None
    with one_thread():
        history = fit(model, data, epochs=epochs, opt=opt, scheduler=sched, batch_size=batch_size,
                      callbacks=callbacks, seed=seed, progress=False)
    return history, model


def lr_sweep(kind: str, data: Splits, optimizer: str, lrs: Sequence[float], epochs: int, seed: int = 0,
             **kwargs) -> dict[float, object]:
    """Train one fresh model per learning rate; return {lr: history}."""
    check_int("number of lrs", len(lrs), 1, 20)
    return {lr: train(kind, data, optimizer, lr, epochs, seed=seed, **kwargs)[0] for lr in lrs}


def best_lr(sweep: dict[float, object]) -> float:
    """The learning rate whose run reached the highest final validation accuracy."""
    return max(sweep, key=lambda lr: sweep[lr].val_acc[-1])


def time_to_target(history, target: float) -> tuple[float, float]:
    """(epoch, seconds) at which validation accuracy first reached ``target`` (inf if never)."""
    check_float("target", target, 0.0, 1.0)
    for epoch, seconds, acc in zip(history.epoch, history.seconds, history.val_acc):
        if acc >= target:
            return float(epoch), float(seconds)
    return math.inf, math.inf


def plot_race(runs: dict[str, object], target: float, device: str,
              title: str = "Adam vs SGD with momentum on MNIST-1D"):
    """Training loss against epoch, validation accuracy against epoch and against wall time."""
    from helpers.plotting import figure

    fig, (ax_loss, ax_acc, ax_time) = figure(f"{title} ({device})", "epoch",
                                             "training loss (nats)", ncols=3, figsize=(13, 4))
    for name, h in runs.items():
        ax_loss.semilogy(h.epoch, h.train_loss, label=name)
        ax_acc.plot(h.epoch, h.val_acc, label=name)
        ax_time.plot(h.seconds, h.val_acc, label=name)
    ax_acc.set_ylabel("validation accuracy (fraction)")
    ax_time.set_ylabel("validation accuracy (fraction)")
    ax_time.set_xlabel(f"wall time on {device} (s)")
    for ax in (ax_acc, ax_time):
        ax.axhline(target, color="black", ls=":", lw=1, label=f"target {target:.2f}")
    for ax in (ax_loss, ax_acc, ax_time):
        ax.legend(fontsize=7)
    return fig


def plot_sweeps(sweeps: dict[str, dict[float, object]]):
    """Final validation accuracy against learning rate, one line per (model, optimizer)."""
    from helpers.plotting import figure

    fig, ax = figure("Learning-rate sweep on MNIST-1D", "learning rate (log scale)",
                     "final validation accuracy (fraction)")
    for name, sweep in sweeps.items():
        lrs = sorted(sweep)
        ax.semilogx(lrs, [sweep[lr].val_acc[-1] for lr in lrs], "o-", label=name)
    ax.legend(fontsize=8)
    return fig


def decay_grid(data: Splits, optimizer: str, lrs: Sequence[float], wds: Sequence[float], epochs: int,
               width: int = 32, seed: int = 0, progress: Progress = None) -> np.ndarray:
    """Final validation accuracy for every (weight decay, learning rate): rows wds, columns lrs."""
    check_choice("optimizer", optimizer, ("adam", "adamw"))
    check_int("grid size", len(lrs) * len(wds), 1, 100)
    grid = np.zeros((len(wds), len(lrs)))
    for i, wd in enumerate(wds):
        for j, lr in enumerate(lrs):
            history, _ = train("mlp", data, optimizer, lr, epochs, weight_decay=wd, width=width, seed=seed)
            grid[i, j] = history.val_acc[-1]
            if progress is not None:
                progress((i * len(lrs) + j + 1) / grid.size)
    return grid


def grid_summary(grid: np.ndarray, within: float = 0.02) -> dict[str, float]:
    """Best accuracy, and how many cells lie within ``within`` of it (the size of the good region)."""
    best = float(np.max(grid))
    return {"best": best, "good cells": int((grid >= best - within).sum()), "mean": float(grid.mean())}


# --------------------------------------------------------------------------------------------
# Schedules, the learning-rate range test, divergence
# --------------------------------------------------------------------------------------------
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "warmup")


def schedule_builder(name: str, total_steps: int, warmup_fraction: float = 0.1, gamma: float = 0.1):
    """A callable ``opt -> torch.optim.lr_scheduler`` stepped once per batch, for ``fit(scheduler=...)``.

    step: x``gamma`` at 50% and 75% of training; cosine: to zero; warmup_cosine: linear warmup over
    ``warmup_fraction`` then cosine; warmup: linear warmup then constant.
    """
    from torch.optim import lr_scheduler as ls

    check_choice("schedule", name, SCHEDULES)
    total = check_int("total_steps", total_steps, 2, 10_000_000)
    warm = max(1, round(check_float("warmup_fraction", warmup_fraction, 0.0, 0.9) * total))

    def build(opt: Optimizer):
        if name == "constant":
            return ls.LambdaLR(opt, lambda step: 1.0)
        if name == "step":
            return ls.MultiStepLR(opt, milestones=[total // 2, 3 * total // 4], gamma=gamma)
        if name == "cosine":
            return ls.CosineAnnealingLR(opt, T_max=total)
        ramp = ls.LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm)
        after = (ls.CosineAnnealingLR(opt, T_max=total - warm) if name == "warmup_cosine"
                 else ls.LambdaLR(opt, lambda step: 1.0))
        return ls.SequentialLR(opt, [ramp, after], milestones=[warm])
    return build


def schedule_curve(name: str, total_steps: int, base_lr: float = 1.0, warmup_fraction: float = 0.1) -> np.ndarray:
    """The learning rate at every step of a schedule (no training)."""
    w = torch.zeros(1, requires_grad=True)
    opt = SGD([w], lr=check_float("base_lr", base_lr, 0.0, 100.0, lo_open=True))
    sched = schedule_builder(name, total_steps, warmup_fraction)(opt)
    lrs = []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


def lr_range_test(kind: str, data: Splits, optimizer: str = "adam", lr_min: float = 1e-5, lr_max: float = 10.0,
                  steps: int = 100, batch_size: int = 128, seed: int = 0, smoothing: float = 0.9) -> dict:
    """Smith's (2017) range test: raise the rate exponentially each batch, record the smoothed loss.

    Stops once the loss exceeds 4x its minimum.  The suggestion is a tenth of the rate at the
    minimum of the smoothed loss (a common rule of thumb: well below where training blows up).
    """
    check_float("lr_min", lr_min, 1e-8, 1.0)
    check_float("lr_max", lr_max, lr_min, 100.0, lo_open=True)
    check_int("steps", steps, 10, 10_000)
    check_float("smoothing", smoothing, 0.0, 0.99)
    model = build_model(kind, data, seed=seed)
    opt = make_optimizer(optimizer, model.parameters(), lr_min)
    factor = (lr_max / lr_min) ** (1 / (steps - 1))
    gen = torch.Generator().manual_seed(seed)
    lrs, losses, avg = [], [], 0.0
    for t in range(steps):
        lr = lr_min * factor ** t
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(data.y_train), (batch_size,), generator=gen).to(data.x_train.device)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        avg = smoothing * avg + (1 - smoothing) * loss.item()
        smoothed = avg / (1 - smoothing ** (t + 1))
        if not math.isfinite(smoothed):
            break
        lrs.append(lr)
        losses.append(smoothed)
        if smoothed > 4 * min(losses):
            break
    lrs, losses = np.array(lrs), np.array(losses)
    best = float(lrs[np.argmin(losses)])
    return {"lrs": lrs, "losses": losses, "lr_at_min": best, "suggested": best / 10,
            "blew_up": bool(losses[-1] > 4 * losses.min())}


def plot_range_test(result: dict, title: str = "Learning-rate range test"):
    """Smoothed loss against learning rate, with the minimum and the suggestion marked."""
    from helpers.plotting import figure

    fig, ax = figure(title, "learning rate (log scale)", "smoothed training loss (nats)")
    ax.semilogx(result["lrs"], result["losses"], label="smoothed loss")
    ax.axvline(result["lr_at_min"], color="grey", ls="--", label=f"minimum at {result['lr_at_min']:.2g}")
    ax.axvline(result["suggested"], color="black", ls=":", label=f"suggested {result['suggested']:.2g}")
    ax.legend()
    return fig


def loss_per_step(kind: str, data: Splits, optimizer: str, lr: float, steps: int, schedule: str = "constant",
                  warmup_fraction: float = 0.1, batch_size: int = 128, seed: int = 0) -> np.ndarray:
    """Training loss after every mini-batch (stops at the first non-finite loss), for divergence checks."""
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 1e-6, 100.0)
    model = build_model(kind, data, seed=seed)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    sched = schedule_builder(schedule, steps, warmup_fraction)(opt) if schedule != "constant" else None
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(data.y_train), (batch_size,), generator=gen).to(data.x_train.device)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return np.array(losses)


def plot_losses(runs: dict[str, np.ndarray], title: str):
    """Training loss against step for several runs, on a log scale."""
    from helpers.plotting import figure

    fig, ax = figure(title, "step (mini-batch)", "training loss (nats, log scale)")
    for name, losses in runs.items():
        ax.semilogy(np.where(np.isfinite(losses), losses, np.nan), label=name)
    ax.legend()
    return fig


def blow_up(losses: np.ndarray) -> float:
    """How far the loss rose: max loss / first loss (inf if it became non-finite)."""
    if len(losses) == 0:
        raise ValueError("losses must be non-empty")
    return math.inf if not np.all(np.isfinite(losses)) else float(np.max(losses) / losses[0])


# --------------------------------------------------------------------------------------------
# The training explorer
# --------------------------------------------------------------------------------------------
class _ProgressCallback:
    """A ``fit`` callback that reports the fraction of epochs done."""

    def __init__(self, epochs: int, progress: Progress) -> None:
        self.epochs, self.progress = epochs, progress

    def on_train_begin(self, model) -> None:  # noqa: D102
        pass

    def on_after_backward(self, model, step) -> None:  # noqa: D102
        pass

    def on_epoch_end(self, model, history) -> bool:  # noqa: D102
        if self.progress is not None:
            self.progress(history.epoch[-1] / self.epochs)
        return False

    def on_train_end(self, model, history) -> None:  # noqa: D102
        pass


def explore_training(optimizer: str = "adamw", lr: float = 3e-3, weight_decay: float = 1e-2,
                     schedule: str = "warmup_cosine", model: str = "mlp", epochs: int = 10,
                     seed: int = 0, data: Splits | None = None, progress: Progress = None):
    """Explorer (Run button): learning curves of one run on MNIST-1D with the chosen settings."""
    from helpers.data import mnist1d
    from helpers.plotting import learning_curves

    check_choice("optimizer", optimizer, ("gd", "momentum", "nesterov", "rmsprop", "adam", "adamw"))
    check_float("lr", lr, 1e-5, 1.0)
    check_float("weight_decay", weight_decay, 0.0, 1.0)
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("model", model, MODELS)
    check_int("epochs", epochs, 1, 60)
    data = data if data is not None else mnist1d(seed=seed)
    history, _ = train(model, data, optimizer, lr, epochs, weight_decay=weight_decay, schedule=schedule,
                       seed=seed, callbacks=[_ProgressCallback(epochs, progress)])
    fig = learning_curves({f"{optimizer}, lr {lr:.2g}, wd {weight_decay:.2g}, {schedule}": history},
                          title=f"{model} on MNIST-1D")
    return fig, {"final val accuracy": history.val_acc[-1], "best val accuracy": history.best("val_acc"),
                 "final train loss": history.train_loss[-1], "seconds": history.seconds[-1]}


# --------------------------------------------------------------------------------------------
# "Your turn" checkers
# --------------------------------------------------------------------------------------------
def _not_attempted(result, what: str) -> bool:
    if result is None:
        print(f"Not attempted yet: {what}")
        return True
    return False


def _check_update_rule(update: Callable, reference: Callable, hyper: tuple, seed: int, name: str,
                       hint: str, stub: str) -> bool:
    """Run a learner's ``update(w, grad, state, *hyper) -> (w, state)`` beside a torch.optim optimizer.

    Both minimise the same diagonal quadratic for 20 steps from the same start; the state starts at zero.
    """
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(5, generator=gen, dtype=torch.float64) * 10 + 0.5
    w_ref = torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_(True)
    opt = reference([w_ref])
    w, state = w_ref.detach().clone(), torch.zeros(5, dtype=torch.float64)
    for step in range(20):
        w_ref.grad = a * w_ref.detach()
        opt.step()
        try:
            result = update(w.clone(), a * w, state.clone(), *hyper)
        except NotImplementedError:
            result = None
        if _not_attempted(result, f"fill in {stub} and run this cell again."):
            return False
        w, state = result
        if not torch.allclose(w, w_ref.detach(), atol=1e-10):
            raise AssertionError(f"After step {step + 1} your weights differ from {name} by "
                                 f"{(w - w_ref.detach()).abs().max().item():.3g}. Hint: {hint}")
    print(f"Correct: your update matches {name} for 20 steps.")
    return True


def check_nesterov(update: Callable) -> bool:
    """Check ``update(w, grad, velocity, lr, momentum) -> (w, velocity)`` against torch.optim.SGD(nesterov=True)."""
    return _check_update_rule(
        update, lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True), (0.05, 0.9), 0,
        "torch.optim.SGD(nesterov=True)", "update the velocity first (v = momentum * v + grad), then step along "
        "grad + momentum * v, not along v.", "nesterov_update")


def check_rmsprop(update: Callable) -> bool:
    """Check ``update(w, grad, square_avg, lr, alpha, eps) -> (w, square_avg)`` against torch.optim.RMSprop."""
    return _check_update_rule(
        update, lambda params: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-8), (0.01, 0.9, 1e-8), 1,
        "torch.optim.RMSprop", "s = alpha*s + (1-alpha)*g**2, then w = w - lr * g / (sqrt(s) + eps): divide by "
        "the ROOT mean square, with eps added after the root.", "rmsprop_update")


def check_lr_pick(lr: float | None, result: dict) -> bool:
    """Accept a learning rate between 1/100 and 1/2 of the range test's loss-minimising rate."""
    if _not_attempted(lr, "set my_lr to a learning rate read off the range-test plot."):
        return False
    lr = check_float("lr", lr, 1e-8, 100.0, lo_open=True)
    lo, hi = result["lr_at_min"] / 100, result["lr_at_min"] / 2
    if lr > hi:
        raise AssertionError(f"lr = {lr:.3g} is too close to where the loss turns up ({result['lr_at_min']:.3g}); "
                             "training there is on the edge of instability. Pick something several times smaller.")
    if lr < lo:
        raise AssertionError(f"lr = {lr:.3g} is far below where the loss starts falling fast; training would "
                             f"crawl. Pick something within about 1/100 to 1/2 of {result['lr_at_min']:.3g}.")
    print(f"Good pick: {lr:.3g} lies in [{lo:.3g}, {hi:.3g}], below the loss minimum at {result['lr_at_min']:.3g}.")
    return True


@dataclass
class Timed:
    """A value and the seconds it took to compute."""

    value: object
    seconds: float


def timed(fn: Callable[[], object]) -> Timed:
    """Run ``fn`` once and keep its result with the wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return Timed(value, time.perf_counter() - start)
