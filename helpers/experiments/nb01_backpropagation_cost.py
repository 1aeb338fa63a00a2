"""Notebook 01, sections 2-3: what a gradient costs -- finite differences against reverse mode, forward against
reverse mode, and the backward pass's time and memory with and without activation checkpointing.

Every time is taken on one CPU thread with :func:`helpers.timing.time_many` (interleaved rounds, fastest
round), so a busy machine slows every method alike.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from helpers import plotting
from helpers.config import one_thread
from helpers.scratch.backprop import central_difference, toy_loss
from helpers.timing import thread_clock, time_many
from helpers.validation import check_int


# --------------------------------------------------------------------------- finite differences against autodiff
def finite_difference_cost(param_counts: Sequence[int], seed: int = 0, rounds: int = 2) -> dict[str, np.ndarray]:
    """Loss evaluations and seconds for one full gradient: finite differences against reverse-mode autodiff.

    Evaluations are counted by a wrapper around the loss. Times are taken on one CPU thread after a
    warm-up, the two methods alternating for ``rounds`` rounds; each keeps its fastest round (load from
    other processes only ever adds time).
    """
    check_int("rounds", rounds, 1, 20)
    for n in param_counts:
        check_int("param_counts", n, 4, 20_000)
    rows: dict[str, list] = {"params": [], "fd_evals": [], "ad_evals": [], "fd_seconds": [], "ad_seconds": []}
    with one_thread():
        for n in param_counts:
            loss, n_params = toy_loss(n, seed)
            w = torch.randn(n_params, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
            calls = [0]

            def counted(v: torch.Tensor, loss=loss, calls=calls) -> torch.Tensor:
                calls[0] += 1
                return loss(v)

            def by_autodiff(counted=counted, w=w) -> None:
                leaf = w.clone().requires_grad_()
                counted(leaf).backward()

            def by_differences(counted=counted, w=w) -> None:
                central_difference(counted, w, 1e-5)

            by_autodiff()
            clock = thread_clock() or time.perf_counter
            evals, seconds = {}, {"fd": [], "ad": []}
            for _ in range(rounds):
                for name, method in (("fd", by_differences), ("ad", by_autodiff)):
                    calls[0], start = 0, clock()
                    method()
                    seconds[name].append(clock() - start)
                    evals[name] = calls[0]
            for key, value in (("params", len(w)), ("fd_evals", evals["fd"]), ("ad_evals", evals["ad"]),
                               ("fd_seconds", min(seconds["fd"])), ("ad_seconds", min(seconds["ad"]))):
                rows[key].append(value)
    result = {key: np.array(values) for key, values in rows.items()}
    result["time_ratio"] = result["fd_seconds"] / result["ad_seconds"]
    return result


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (1: y grows in proportion to x)."""
    log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(log_x) < 2 or not np.all(np.isfinite(log_x)) or not np.all(np.isfinite(log_y)):
        raise ValueError("x and y must hold at least two positive numbers each")
    return float(np.polyfit(log_x, log_y, 1)[0])


def _integer_log_axis(ax, values: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(list(values), [str(int(v)) for v in values], rotation=45)
    ax.minorticks_off()


def cost_figure(cost: dict[str, np.ndarray], device: str = "cpu"):
    """Loss evaluations and milliseconds per full gradient against the parameter count, both methods."""
    fig, (left, right) = plotting.figure("Cost of one full gradient", "number of parameters (log scale)",
                                         "loss evaluations per gradient (log scale)", ncols=2)
    right.set_ylabel(f"ms per gradient ({device}, 1 thread, log scale)")
    for ax, key, scale in ((left, "evals", 1.0), (right, "seconds", 1e3)):
        ax.plot(cost["params"], cost[f"fd_{key}"] * scale, "o-", label="finite differences")
        ax.plot(cost["params"], cost[f"ad_{key}"] * scale, "s-", label="autodiff (forward + backward)")
        ax.set_yscale("log")
        _integer_log_axis(ax, cost["params"])
    right.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


# --------------------------------------------------------------------------- forward mode against reverse mode
def scalar_loss_of_inputs(n: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scalar function of ``n`` inputs, ``sum(tanh(A x))^2 / 64`` with a fixed random ``A`` of shape (64, n)."""
    check_int("n", n, 1, 100_000)
    a = torch.randn(64, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) / math.sqrt(n)
    return lambda x: torch.tanh(a @ x).sum() ** 2 / 64


def _first_forward_mode_call(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """A forward-mode warm-up call, with one known warning of the session's first call silenced.

    PyTorch's forward-mode AD loads its decompositions on first use by compiling them with
    ``torch.jit.script``, which torch 2.13 reports as deprecated (18 DeprecationWarnings that concern
    PyTorch's internals, not this code). They are silenced for that one call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        torch.func.jvp(f, (x,), (torch.ones_like(x),))


def _gradient_both_ways(n: int, seed: int) -> tuple[Callable, Callable, dict[str, int]]:
    """Two ways to the full gradient of :func:`scalar_loss_of_inputs`: one ``vjp``, or one ``jvp`` per input."""
    f = scalar_loss_of_inputs(n, seed)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    basis = torch.eye(n, dtype=x.dtype)
    passes = {"forward": 0, "reverse": 0}

    def reverse() -> torch.Tensor:
        _, pullback = torch.func.vjp(f, x)
        passes["reverse"] += 1
        return pullback(torch.ones((), dtype=x.dtype))[0]

    def forward() -> torch.Tensor:
        grad = torch.empty(n, dtype=x.dtype)
        for i in range(n):
            grad[i] = torch.func.jvp(f, (x,), (basis[i],))[1]
            passes["forward"] += 1
        return grad

    _first_forward_mode_call(f, x)
    return reverse, forward, passes


def forward_vs_reverse(sizes: Sequence[int], seed: int = 0, rounds: int = 2) -> list[dict[str, float]]:
    """The full gradient of a scalar function of n inputs, for each n in ``sizes``, by reverse and forward mode.

    Forward mode needs one ``jvp`` per input direction (a basis vector), reverse mode one ``vjp`` for the
    whole gradient. One row per n: the passes each used, the largest |difference| between the two
    gradients, and milliseconds per gradient. Every (mode, n) pair is timed in the same interleaved rounds,
    so no size is timed alone while the machine warms up.
    """
    check_int("rounds", rounds, 1, 20)
    rows, methods = [], {}
    for n in sizes:
        check_int("sizes", n, 1, 4096)
        reverse, forward, passes = _gradient_both_ways(n, seed)
        difference = (reverse() - forward()).abs().max().item()
        rows.append({"n": n, "reverse passes": passes["reverse"], "forward passes": passes["forward"],
                     "max |difference|": difference})
        methods[f"reverse {n}"], methods[f"forward {n}"] = reverse, forward
    with one_thread():
        seconds = time_many(methods, rounds=rounds, min_run_time=0.01, clock=thread_clock())
    for row in rows:
        row["reverse ms"], row["forward ms"] = (seconds[f"{mode} {row['n']}"] * 1e3 for mode in ("reverse", "forward"))
    return rows


def modes_figure(modes: Sequence[dict[str, float]], device: str = "cpu"):
    """Milliseconds per full gradient against the number of inputs: forward mode (n jvp) and reverse mode (1 vjp)."""
    sizes = [m["n"] for m in modes]
    fig, ax = plotting.figure("Full gradient of a scalar loss: forward against reverse mode",
                              "number of inputs n (log scale)", f"ms per gradient ({device}, 1 thread, log scale)")
    ax.plot(sizes, [m["forward ms"] for m in modes], "o-", label="forward mode (n jvp passes)")
    ax.plot(sizes, [m["reverse ms"] for m in modes], "s-", label="reverse mode (1 vjp pass)")
    ax.set_yscale("log")
    _integer_log_axis(ax, sizes)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


# --------------------------------------------------------------------------- what the backward pass costs
def deep_tanh_stack(depth: int, width: int, seed: int = 0, device: torch.device | str = "cpu") -> nn.Sequential:
    """``depth`` blocks of Linear(width, width) + tanh: a plain deep network to time and measure."""
    check_int("depth", depth, 2, 64)
    check_int("width", width, 8, 2048)
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(depth)]).to(device)


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, segments: int = 0) -> torch.Tensor:
    """Forward through ``blocks``; with ``segments`` > 0 each of that many runs of blocks is checkpointed.

    A checkpointed segment keeps only its input for the backward pass and recomputes its activations
    when the backward pass reaches it (``torch.utils.checkpoint``).
    """
    check_int("segments", segments, 0, len(blocks))
    if segments == 0:
        return blocks(x)
    for start, stop in segment_bounds(len(blocks), segments):
        x = checkpoint(blocks[start:stop], x, use_reentrant=False)
    return x


def segment_bounds(n_blocks: int, segments: int) -> list[tuple[int, int]]:
    """(start, stop) of each of ``segments`` near-equal runs of ``n_blocks`` blocks."""
    check_int("segments", segments, 1, n_blocks)
    bounds = np.linspace(0, n_blocks, segments + 1).round().astype(int)
    return [(int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:])]


def bytes_kept_for_backward(blocks: nn.Sequential, x: torch.Tensor, segments: int = 0) -> int:
    """Bytes of activations the forward pass keeps alive for the backward pass (parameters not counted).

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves passes
    through the hook; each distinct storage that is not a parameter is counted once.
    """
    parameters = {p.untyped_storage().data_ptr() for p in blocks.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = run_blocks(blocks, x, segments)
    out.sum().backward()
    return sum(kept.values())


def backward_cost(depth: int = 16, width: int = 256, batch: int = 128, segments: int = 4, seed: int = 0,
                  device: torch.device | str = "cpu", rounds: int = 2) -> dict[str, float]:
    """Time and memory of the backward pass of a deep tanh stack, with and without activation checkpointing.

    Returns seconds for a forward pass (autograd recording), forward + backward, and forward + backward
    with ``segments`` checkpointed segments; the bytes of activations kept between the two passes either
    way; and, for the checkpointed run, the bytes held at the peak of the backward pass: the segment
    inputs plus the activations of the largest segment, which its backward recomputes and keeps while
    it runs (every activation has the same shape, so one segment's count holds for any input).
    """
    check_int("batch", batch, 1, 4096)
    check_int("segments", segments, 1, depth)
    blocks = deep_tanh_stack(depth, width, seed, device)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_()
    seconds = time_many({"forward": lambda: run_blocks(blocks, x),
                         "forward + backward": lambda: run_blocks(blocks, x).sum().backward(),
                         "checkpointed": lambda: run_blocks(blocks, x, segments).sum().backward()},
                        rounds=rounds, min_run_time=0.03, clock=thread_clock(device))
    per_activation = batch * width * x.element_size()
    held = bytes_kept_for_backward(blocks, x, segments)
    recomputed = max(bytes_kept_for_backward(blocks[start:stop], x) - per_activation   # its input is held already
                     for start, stop in segment_bounds(depth, segments))
    return {"forward s": seconds["forward"], "forward + backward s": seconds["forward + backward"],
            "checkpointed s": seconds["checkpointed"], "bytes kept": bytes_kept_for_backward(blocks, x),
            "bytes kept checkpointed": held, "bytes at peak checkpointed": held + recomputed,
            "bytes per activation": per_activation}


