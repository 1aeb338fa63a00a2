"""Notebook 02's loss-surface experiments: paths on an ill-conditioned quadratic and on Rosenbrock's valley,
iterations to a tolerance against the theory (gradient descent vs heavy-ball momentum), and the live
trajectory explorer. Everything here is deterministic and runs in float64 on two coordinates.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from helpers.plotting import PALETTE, figure
from helpers.scratch import optimizers
from helpers.train import make_optimizer
from helpers.validation import check_choice, check_float, check_int

Loss = Callable[[torch.Tensor], torch.Tensor]
SURFACES = ("quadratic", "rosenbrock")
STARTS = {"quadratic": (-1.0, 0.8), "rosenbrock": (-1.2, 1.0)}
MINIMA = {"quadratic": (0.0, 0.0), "rosenbrock": (1.0, 1.0)}
PATH_OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
DIVERGED = 1e12


def quadratic(kappa: float) -> Loss:
    """f(w) = 0.5 (w1^2 + kappa w2^2): minimum 0 at the origin, condition number kappa."""
    curvature = torch.tensor([1.0, check_float("kappa", kappa, 1.0, 1e6)], dtype=torch.float64)
    return lambda w: 0.5 * (curvature * w * w).sum(-1)


def rosenbrock(w: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's banana valley (1 - x)^2 + 100 (y - x^2)^2: minimum 0 at (1, 1)."""
    x, y = w[..., 0], w[..., 1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def surface_loss(surface: str, kappa: float = 20.0) -> Loss:
    """The loss function of ``surface`` (``kappa`` only shapes the quadratic)."""
    check_choice("surface", surface, SURFACES)
    return quadratic(kappa) if surface == "quadratic" else rosenbrock


def trajectory(loss_fn: Loss, start: Sequence[float], optimizer: str, lr: float, steps: int,
               momentum: float = 0.9, beta2: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """Run ``optimizer`` from ``start`` on a 2-D loss: the path (steps + 1, 2) and the loss at each point.

    Stops early once the loss passes 1e12 or stops being finite (the run diverged).
    """
    check_choice("optimizer", optimizer, PATH_OPTIMIZERS)
    check_int("steps", steps, 1, 100_000)
    w = torch.tensor(list(start), dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(optimizer, [w], lr, momentum=momentum, beta2=beta2, library=optimizers)
    path, losses = [w.detach().clone()], []
    for _ in range(steps):
        loss = loss_fn(w)
        losses.append(loss.item())
        if not losses[-1] < DIVERGED:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(w.detach().clone())
    if len(path) > len(losses):
        losses.append(loss_fn(w.detach()).item())
    return torch.stack(path).numpy(), np.array(losses)


def tuned_run(loss_fn: Loss, start: Sequence[float], optimizer: str, lrs: Sequence[float], steps: int,
              momentum: float = 0.9) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """The rate of ``lrs`` whose run ends with the lowest loss after ``steps`` steps, and that run."""
    check_int("number of rates", len(lrs), 1, 50)
    runs = {lr: trajectory(loss_fn, start, optimizer, lr, steps, momentum) for lr in lrs}
    best = min(runs, key=lambda lr: runs[lr][1][-1] if runs[lr][1][-1] < DIVERGED else math.inf)
    return best, runs[best]


# --------------------------------------------------------------------------------------------
# Iterations to a tolerance: gradient descent vs heavy-ball momentum, measured and predicted
# --------------------------------------------------------------------------------------------
def optimal_settings(kappa: float, mu: float = 1.0) -> dict[str, float]:
    """Best fixed settings on a quadratic with curvatures in [mu, kappa mu] (Polyak 1964; Goh 2017).

    Gradient descent: lr = 2 / (L + mu), error shrinks by (kappa - 1) / (kappa + 1) per step.
    Heavy ball: lr = 4 / (sqrt(L) + sqrt(mu))^2, momentum ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2,
    error shrinks by (sqrt(kappa) - 1) / (sqrt(kappa) + 1) per step.
    """
    kappa = check_float("kappa", kappa, 1.0, 1e6)
    mu = check_float("mu", mu, 0.0, 1e6, lo_open=True)
    big = kappa * mu
    root = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    return {"gd_lr": 2 / (big + mu), "gd_rate": (kappa - 1) / (kappa + 1),
            "momentum_lr": 4 / (math.sqrt(big) + math.sqrt(mu)) ** 2, "momentum_beta": root ** 2,
            "momentum_rate": root}


def error_curve(kappa: float, method: str, steps: int, tol: float = 0.0) -> np.ndarray:
    """||w_t|| / ||w_0|| for t = 0..steps on diag(1, kappa) from (1, 1), each method at its optimal settings.

    Stops once the error is below ``tol`` (0 runs every step).
    """
    check_choice("method", method, ("gd", "momentum"))
    check_int("steps", steps, 1, 1_000_000)
    best = optimal_settings(kappa)
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = (optimizers.SGD([w], lr=best["gd_lr"]) if method == "gd"
           else optimizers.SGD([w], lr=best["momentum_lr"], momentum=best["momentum_beta"]))
    curvature = torch.tensor([1.0, kappa], dtype=torch.float64)
    start, errors = w.detach().norm().item(), [1.0]
    for _ in range(steps):
        w.grad = curvature * w.detach()                          # the gradient of 0.5 w^T A w
        opt.step()
        errors.append(w.detach().norm().item() / start)
        if errors[-1] < tol:
            break
    return np.array(errors)


def iterations_to_tolerance(kappa: float, method: str, tol: float = 1e-6, max_iters: int = 200_000) -> int:
    """Steps until ||w_t|| / ||w_0|| < ``tol`` (``max_iters`` if never)."""
    check_float("tol", tol, 1e-14, 0.5)
    errors = error_curve(kappa, method, check_int("max_iters", max_iters, 1, 1_000_000), tol)
    return len(errors) - 1 if errors[-1] < tol else max_iters


def convergence_table(kappas: Sequence[float] = (10, 100, 1000), tol: float = 1e-6) -> list[dict]:
    """Iterations to ``tol`` for both methods, measured and predicted from their rates, per condition number."""
    rows = []
    for kappa in kappas:
        gd, heavy_ball = iterations_to_tolerance(kappa, "gd", tol), iterations_to_tolerance(kappa, "momentum", tol)
        best = optimal_settings(kappa)
        rows.append({"κ": kappa, "GD iterations": gd, "momentum iterations": heavy_ball,
                     "speed-up": gd / heavy_ball, "√κ": math.sqrt(kappa),
                     "GD predicted": round(math.log(tol) / math.log(best["gd_rate"])),
                     "momentum predicted": round(math.log(tol) / math.log(best["momentum_rate"]))})
    return rows


def plot_error_curves(kappa: float, steps: int):
    """Relative error against iteration for both methods, with the rate each theory predicts."""
    fig, ax = figure(f"Optimal gradient descent vs optimal momentum, κ = {kappa:g}", "iteration",
                     "relative error ||w - w*|| / ||w0 - w*|| (log)", figsize=(9.5, 3.8))
    best = optimal_settings(kappa)
    for colour, method in zip(PALETTE, ("gd", "momentum")):
        errors = error_curve(kappa, method, steps)
        ax.semilogy(np.maximum(errors, 1e-17), color=colour, lw=2.5, alpha=0.6, label=f"{method}, measured")
        hidden = " (lies on the measured line)" if method == "gd" else ""
        ax.semilogy(best[f"{method}_rate"] ** np.arange(len(errors)), ":", color="black", lw=1.2,
                    label=f"{method}, predicted rate^t{hidden}")
    ax.axhline(1e-6, color="grey", ls="--", lw=1, label="tolerance 1e-6")
    ax.set_ylim(1e-9, 10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------------------------
# Paths on the surfaces, and the live explorer
# --------------------------------------------------------------------------------------------
def _contours(ax, surface: str, loss_fn: Loss) -> None:
    xs, ys = ((np.linspace(-1.2, 1.2, 80), np.linspace(-1.5, 1.5, 70)) if surface == "quadratic"
              else (np.linspace(-2.0, 2.0, 80), np.linspace(-1.0, 3.0, 70)))
    grid_x, grid_y = np.meshgrid(xs, ys)
    heights = loss_fn(torch.tensor(np.stack([grid_x, grid_y], -1))).numpy()
    ax.contour(grid_x, grid_y, np.log10(heights + 1e-3), levels=14, colors="grey", linewidths=0.6,
               linestyles="solid")
    ax.plot(*MINIMA[surface], "k*", ms=12, label="minimum", zorder=5)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])


def plot_trajectories(surface: str, runs: dict[str, tuple[np.ndarray, np.ndarray]], kappa: float = 20.0,
                      title: str | None = None):
    """Paths on the contour plot (left) and loss against step on a log scale (right).

    Runs are drawn in order, later ones on top with thinner lines, so no path hides another.
    """
    loss_fn = surface_loss(surface, kappa)
    fig, (ax_path, ax_loss) = figure(title or f"Paths on the {surface}", "w1 (parameter units)",
                                     "w2 (parameter units)", ncols=2, figsize=(11, 4.2))
    _contours(ax_path, surface, loss_fn)
    for i, (colour, (name, (path, losses))) in enumerate(zip(PALETTE, runs.items())):
        width = 3.0 - 0.8 * i
        ax_path.plot(path[:, 0], path[:, 1], ".-", color=colour, ms=3, lw=width, alpha=0.85, label=name)
        ax_loss.semilogy(np.maximum(losses, 1e-16), color=colour, lw=width, alpha=0.85, label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (log scale, no units)")
    ax_loss.set_ylim(bottom=max(1e-16, ax_loss.get_ylim()[0]))
    ax_loss.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def uses_momentum(values: dict) -> bool:
    """Whether the chosen optimizer has a momentum (beta1) setting: the explorer greys it out otherwise."""
    return values["optimizer"] in ("momentum", "nesterov", "adam")


def uses_beta2(values: dict) -> bool:
    """Whether the chosen optimizer keeps a running mean of squared gradients (beta2, RMSprop's alpha)."""
    return values["optimizer"] in ("rmsprop", "adam")


def uses_kappa(values: dict) -> bool:
    """Whether the condition number shapes the chosen surface (only the quadratic's)."""
    return values["surface"] == "quadratic"


def explore_trajectory(optimizer: str = "momentum", surface: str = "quadratic", lr: float = 0.05,
                       momentum: float = 0.9, beta2: float = 0.999, kappa: float = 20.0, steps: int = 100,
                       compare_sgd: bool = True):
    """Explorer: one optimizer's path on the quadratic (condition number ``kappa``) or on Rosenbrock."""
    check_choice("optimizer", optimizer, PATH_OPTIMIZERS)
    check_float("lr", lr, 1e-5, 10.0)
    check_float("momentum", momentum, 0.0, 0.999)
    check_float("beta2", beta2, 0.5, 0.9999)
    check_float("kappa", kappa, 1.0, 1000.0)
    check_int("steps", steps, 1, 2000)
    loss_fn = surface_loss(surface, kappa)
    runs = {optimizer: trajectory(loss_fn, STARTS[surface], optimizer, lr, steps, momentum, beta2)}
    if compare_sgd and optimizer != "sgd":
        runs["sgd, same rate"] = trajectory(loss_fn, STARTS[surface], "sgd", lr, steps)
    path, losses = runs[optimizer]
    what = f"κ = {kappa:g} quadratic" if surface == "quadratic" else "Rosenbrock valley"
    fig = plot_trajectories(surface, runs, kappa, f"{optimizer}, lr {lr:.3g}, {steps} steps, on the {what}")
    numbers = {"final loss": float(losses[-1]),
               "distance to minimum": float(np.linalg.norm(path[-1] - np.array(MINIMA[surface])))}
    if not losses[-1] < DIVERGED:
        numbers["note"] = (f"{optimizer} diverged after {len(path) - 1} steps: the loss passed 1e12. "
                           "Each step overshot the valley by more than it gained; lower the learning rate.")
    return fig, numbers
