"""Notebook 05, NaN hunting: a hand-written cross-entropy at a high learning rate, caught by a gradient guard.

The tools are in :mod:`helpers.scratch.nan_hunting`; this module runs the hunt on MNIST-1D, its
control (the library's cross-entropy at the same rate), and the cost of each tool per step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial

import torch
from torch.nn import functional

from helpers import data as datasets
from helpers import plotting
from helpers.scratch import nan_hunting
from helpers.scratch.pipeline import adam, classifier, gradient_norm
from helpers.timing import time_many
from helpers.validation import check_float, check_int


@dataclass
class Hunt:
    """What one run at a high learning rate showed, step by step."""

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)   # after each backward pass (nan or inf when broken)
    guard_step: int | None = None          # first step whose loss or gradients were not finite
    loss_at_guard: float | None = None     # the loss of that step (often finite: the forward pass looked fine)
    bad_parameters: int = 0                # parameter tensors with non-finite gradients at that step
    parameters: int = 0
    origin: str | None = None              # backward function named by the anomaly replay
    nan_loss_step: int | None = None       # first step whose loss was not finite
    blamed: str | None = None              # first module with a non-finite output at that step (forward hooks)


def hunt(seed: int = 0, lr: float = 0.2, steps: int = 30, naive: bool = True) -> Hunt:
    """Train the MNIST-1D classifier with Adam at ``lr``, hand-written (``naive``) or library cross-entropy.

    A guard after each backward pass records the first step whose loss or gradients are not finite and
    replays it under anomaly detection; forward hooks record which module first outputs a NaN once the
    loss is not finite (training stops there).
    """
    check_float("lr", lr, 0.0, 100.0, lo_open=True)
    check_int("steps", steps, 1, 10_000)
    pipeline = classifier("MNIST-1D", datasets.mnist1d(seed=seed), seed)
    loss_fn = nan_hunting.naive_cross_entropy if naive else functional.cross_entropy
    model = pipeline.fresh_model().train()
    optimizer = adam(model, lr)
    generator = torch.Generator().manual_seed(seed)
    result = Hunt(parameters=len(list(model.parameters())))
    for step in range(steps):
        index = torch.randperm(len(pipeline.data.y_train), generator=generator)[:pipeline.batch_size]
        x, y = pipeline.data.x_train[index], pipeline.data.y_train[index]
        torch.manual_seed(seed * 100_000 + step)              # the same dropout masks if this step is replayed
        with nan_hunting.FirstNonFiniteOutput(model) as hooks:
            loss = loss_fn(model(x), y)
        result.losses.append(loss.item())
        if not math.isfinite(loss.item()):
            result.nan_loss_step, result.blamed = step, hooks.culprit
        optimizer.zero_grad()
        loss.backward()
        result.grad_norms.append(gradient_norm(model))
        finite = math.isfinite(loss.item()) and nan_hunting.gradients_finite(model)
        if result.guard_step is None and not finite:              # the guard: loss and gradients after backward()
            result.guard_step, result.loss_at_guard = step, loss.item()
            result.bad_parameters = len(nan_hunting.non_finite_gradients(model))
            result.origin = nan_hunting.anomaly_origin(partial(replay, model, loss_fn, x, y, seed * 100_000 + step))
        if result.nan_loss_step is not None:
            break
        optimizer.step()
    return result


def replay(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    """The same forward and backward pass again (same weights, batch and dropout masks)."""
    model.zero_grad()
    torch.manual_seed(seed)
    loss_fn(model(x), y).backward()


def figure(naive: Hunt, library: Hunt):
    """Loss and gradient norm per step for the hand-written and the library cross-entropy (X: not finite)."""
    fig, (loss_ax, grad_ax) = plotting.figure("Adam at 100x the learning rate: the gradient breaks first",
                                              "training step", "training loss (nats)", ncols=2)
    runs = {"hand-written -log(softmax)": (naive, plotting.PALETTE[1]), "F.cross_entropy (control)":
            (library, plotting.PALETTE[0])}
    for ax, series in ((loss_ax, "losses"), (grad_ax, "grad_norms")):
        finite_values = [v for run, _ in runs.values() for v in getattr(run, series) if math.isfinite(v)]
        top = max(finite_values) * (3 if ax is grad_ax else 1.25)
        for name, (run, colour) in runs.items():
            values = getattr(run, series)
            steps = [step for step, v in enumerate(values) if math.isfinite(v)]
            ax.plot(steps, [values[step] for step in steps], marker="o", markersize=3, color=colour, label=name,
                    lw=2.5 if run is naive else 1.2, zorder=3 if run is naive else 2)
            broken = [step for step, v in enumerate(values) if not math.isfinite(v)]
            ax.scatter(broken, [top] * len(broken), marker="X", s=80, color=colour, zorder=4,
                       label=f"{name}: not finite (drawn at the top)" if broken else None)
    grad_ax.set_yscale("log")
    grad_ax.set_ylabel("gradient norm (log scale)")
    grad_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def overheads(seed: int = 0, rounds: int = 3) -> dict[str, float]:
    """Seconds per training step: plain, with the finiteness guard, and under anomaly detection.

    Interleaved rounds, fastest round; on the CPU the clock is the calling thread's CPU time, so other busy
    processes do not distort the ratios (on a GPU, wall-clock time after synchronising)."""
    check_int("rounds", rounds, 1, 50)
    pipeline = classifier("MNIST-1D", datasets.mnist1d(seed=seed), seed)
    model = pipeline.fresh_model().train()
    optimizer = adam(model, lr=0.0)        # every step does the full work but leaves the weights as they are,
    x, y = pipeline.batch(pipeline.batch_size)  # so later rounds do not time a different (over-fitted) model

    def step(guard: bool = False) -> None:
        optimizer.zero_grad()
        functional.cross_entropy(model(x), y).backward()
        if guard and not nan_hunting.gradients_finite(model):
            raise FloatingPointError("non-finite gradient")
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize()

    def anomaly_step() -> None:
        nan_hunting.anomaly_origin(step)

    return time_many({"plain": step, "guard": lambda: step(guard=True), "anomaly": anomaly_step},
                     rounds=rounds, min_run_time=0.05, clock=None if x.is_cuda else time.thread_time)
