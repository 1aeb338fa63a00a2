"""Notebook 01, sections 1-3: the autodiff engine checked, finite differences, forward vs reverse mode, and
what the backward pass costs in time and memory.

The science lives in :mod:`helpers.scratch.autodiff` (the scalar engine) and :mod:`helpers.scratch.backprop`
(manual backward, finite differences, custom autograd functions); this module runs, times and draws them.
"""
from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from helpers import exercises, plotting
from helpers.config import one_thread
from helpers.scratch.autodiff import Value, topological_order
from helpers.scratch.backprop import central_difference, mlp_loss, toy_loss
from helpers.timing import time_many
from helpers.validation import check_choice, check_float, check_int


# --------------------------------------------------------------------------- the graph, drawn
def draw_graph(root: Value, title: str = "Computational graph: forward values, gradients and local derivatives"):
    """One box per value (label, data, grad) and one arrow per input, labelled with its local derivative.

    Columns are the longest distance from a leaf: inputs on the left, the loss on the right. Gradients
    flow right to left: a node's grad is the sum, over its outgoing arrows, of (arrow label x grad at
    the arrow's head). Graphs above 40 nodes are refused (they would not read).
    """
    order = topological_order(root)
    if len(order) > 40:
        raise ValueError(f"root's graph must have at most 40 nodes to be drawn, got {len(order)}")
    depth: dict[int, int] = {}
    for node in order:
        depth[id(node)] = 1 + max((depth[id(c)] for c in node.children), default=-1)
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    position = {id(node): (column, row - (len(nodes) - 1) / 2)
                for column, nodes in columns.items() for row, node in enumerate(nodes)}
    n_cols, n_rows = len(columns), max(len(nodes) for nodes in columns.values())
    fig, ax = plotting.figure(title, "forward pass: inputs on the left, loss on the right", "graph",
                              figsize=(max(6.4, 2.0 * n_cols), max(3.0, 1.3 * n_rows + 1.2)))
    ax.axis("off")
    for node in order:
        x, y = position[id(node)]
        for child, local_grad in zip(node.children, node.local_grads or (None,) * len(node.children)):
            cx, cy = position[id(child)]
            start, end = np.array([cx + 0.32, cy]), np.array([x - 0.32, y])
            control = (start + end) / 2                    # straight between neighbouring columns
            if x - cx > 1:                                 # longer edges arc around the boxes between
                control = control + [0.0, 0.75 if cy >= y else -0.75]
            curve = [(1 - u) ** 2 * start + 2 * (1 - u) * u * control + u ** 2 * end for u in np.linspace(0, 1, 30)]
            ax.plot(*np.array(curve).T, color="0.45", lw=1)
            ax.annotate("", xy=end, xytext=curve[-3], arrowprops=dict(arrowstyle="->", color="0.45", lw=1))
            if local_grad is not None:
                middle = curve[15] + [0.0, 0.1]
                ax.text(*middle, f"{local_grad:.3g}", ha="center", va="bottom", fontsize=8, color="#D55E00",
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"))
        name = node.label or node.op or "constant"
        ax.text(x, y, f"{name}\ndata {node.data:.3g}\ngrad {node.grad:.3g}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#FBE3D6" if node.children else "#DCEBF7", ec="0.4"))
    ax.text(0.0, -0.02, "orange: local derivative d(head)/d(tail) of each arrow, computed in the forward pass",
            transform=ax.transAxes, fontsize=8, color="#D55E00", va="top")
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-n_rows / 2 - 0.4, n_rows / 2 + 0.4)
    return fig


# --------------------------------------------------------------------------- the engine against torch.autograd
UNARY = ("exp", "log", "tanh", "relu", "sigmoid", "pow")
BINARY = ("+", "-", "*", "/")


def random_program(n_inputs: int, n_ops: int, seed: int) -> list[tuple[str, int, int]]:
    """A random straight-line program over ``n_inputs`` scalars: (operation, operand i, operand j) steps."""
    check_int("n_inputs", n_inputs, 1, 50)
    check_int("n_ops", n_ops, 1, 500)
    rng = random.Random(seed)
    return [(rng.choice(UNARY + BINARY), rng.randrange(n_inputs + k), rng.randrange(n_inputs + k))
            for k in range(n_ops)]


def _call(x: Any, name: str) -> Any:
    """``x.name()`` for a ``Value``, ``torch.name(x)`` for a tensor."""
    return getattr(x, name)() if isinstance(x, Value) else getattr(torch, name)(x)


OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "exp": lambda a, b: _call(_call(a, "tanh"), "exp"), "log": lambda a, b: _call(a * a + 1.0, "log"),
    "tanh": lambda a, b: _call(a, "tanh"), "relu": lambda a, b: _call(a, "relu"),
    "sigmoid": lambda a, b: _call(a, "sigmoid"), "pow": lambda a, b: (a * a + 1.0) ** 1.5,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / (b * b + 1.0),
}


def run_program(steps: Sequence[tuple[str, int, int]], inputs: Sequence[Any]) -> Any:
    """Evaluate ``steps`` on ``Value`` objects or 0-d float64 tensors; return the sum of every node.

    Guards keep every value finite and every log and division defined: ``log(1 + a^2)``,
    ``exp(tanh(a))``, ``a / (1 + b^2)``, ``(a^2 + 1) ** 1.5``.
    """
    nodes = list(inputs)
    for op, i, j in steps:
        nodes.append(OPERATIONS[op](nodes[i], nodes[j]))
    total = nodes[0]
    for node in nodes[1:]:
        total = total + node
    return total


def engine_vs_torch_autograd(n_expressions: int = 20, n_inputs: int = 4, n_ops: int = 12,
                             seed: int = 0) -> dict[str, float]:
    """Gradients of random expressions from the scalar ``Value`` engine against ``torch.autograd`` in float64.

    Returns the largest absolute and relative difference over every input of every expression.
    """
    check_int("n_expressions", n_expressions, 1, 1000)
    rng = random.Random(seed)
    worst_abs, worst_rel, n_gradients = 0.0, 0.0, 0
    for k in range(n_expressions):
        steps = random_program(n_inputs, n_ops, seed * 100_003 + k)
        xs = [rng.uniform(-2.0, 2.0) for _ in range(n_inputs)]
        ours = [Value(x) for x in xs]
        run_program(steps, ours).backward()
        theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
        run_program(steps, theirs).backward()
        for value, tensor in zip(ours, theirs):
            difference = abs(value.grad - tensor.grad.item())
            worst_abs = max(worst_abs, difference)
            worst_rel = max(worst_rel, difference / max(abs(tensor.grad.item()), 1e-12))
            n_gradients += 1
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "n_gradients": n_gradients}


def autograd_gradients(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference gradients of :func:`helpers.scratch.backprop.mlp_loss` from ``torch.autograd.grad``."""
    grads = torch.autograd.grad(mlp_loss(params, x, y), list(params.values()))
    return dict(zip(params, grads))


def compare_gradients(manual: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                      rtol: float = 1e-7, atol: float = 1e-10) -> list[dict[str, Any]]:
    """One row per parameter: bit-identical?, close (``torch.allclose``)?, and the largest |difference|."""
    rows = []
    for name, ref in reference.items():
        if name not in manual:
            raise ValueError(f"manual is missing the gradient of {name!r}")
        got = manual[name].detach()
        if got.shape != ref.shape:
            raise ValueError(f"gradient of {name!r} must have shape {tuple(ref.shape)}, got {tuple(got.shape)}")
        rows.append({"parameter": name, "shape": tuple(ref.shape), "bit-identical": bool(torch.equal(got, ref)),
                     "close": bool(torch.allclose(got, ref, rtol=rtol, atol=atol)),
                     "max |difference|": (got - ref).abs().max().item()})
    return rows


# --------------------------------------------------------------------------- finite differences
def _toy_problem(n_params: int, seed: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
    """The toy loss, a float64 point and its exact (autodiff) gradient there."""
    loss, n = toy_loss(n_params, seed)
    w = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    leaf = w.clone().requires_grad_()
    (reference,) = torch.autograd.grad(loss(leaf), leaf)
    return loss, w, reference


def finite_difference_errors(hs: Sequence[float], dtype: str = "float64", n_params: int = 40,
                             seed: int = 0) -> np.ndarray:
    """Relative error ||g_fd - g_autodiff|| / ||g_autodiff|| of centred differences for each step ``h``.

    The differences run in ``dtype``; the reference is autodiff in float64. Small h suffers round-off
    (about eps / h), large h truncation (about h^2).
    """
    check_choice("dtype", dtype, ("float32", "float64"))
    if not 1 <= len(hs) <= 100:
        raise ValueError(f"hs must hold 1 to 100 step sizes, got {len(hs)}")
    loss, w, reference = _toy_problem(n_params, seed)
    w = w.to(getattr(torch, dtype))
    return np.array([((central_difference(loss, w, float(h))[0].double() - reference).norm()
                      / reference.norm()).item() for h in hs])


def share_of_steps_lost(h: float, dtype: str = "float32", n_params: int = 40, seed: int = 0) -> float:
    """Fraction of parameters w_i for which ``w_i + h`` rounds back to exactly ``w_i`` in ``dtype``.

    For those the two evaluations are identical, the estimate is exactly 0, and the relative error is 1.
    """
    check_float("h", h, 0.0, 1.0, lo_open=True)
    check_choice("dtype", dtype, ("float32", "float64"))
    _, w, _ = _toy_problem(n_params, seed)
    w = w.to(getattr(torch, dtype))
    return ((w + h) == w).double().mean().item()


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
            loss, w, _ = _toy_problem(n, seed)
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
            evals, seconds = {}, {"fd": [], "ad": []}
            for _ in range(rounds):
                for name, method in (("fd", by_differences), ("ad", by_autodiff)):
                    calls[0], start = 0, time.perf_counter()
                    method()
                    seconds[name].append(time.perf_counter() - start)
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


def run_gradcheck(fn: Callable[[torch.Tensor], torch.Tensor], n: int = 6, seed: int = 0) -> bool:
    """``torch.autograd.gradcheck`` of ``fn`` at a random float64 vector: True when its backward is right."""
    check_int("n", n, 1, 1000)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    return bool(torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, raise_exception=False))


FD_STEPS = np.logspace(-12, -1, 23)


@lru_cache(maxsize=2)
def _explorer_curve(precision: str) -> np.ndarray:
    return finite_difference_errors(FD_STEPS, precision, n_params=24)


def finite_difference_explorer(log10_h: float = -5.0, precision: str = "float64"):
    """Explorer: relative error of centred differences against the step size h, the chosen h marked."""
    check_float("log10_h", log10_h, -12.0, -1.0)
    check_choice("precision", precision, ("float32", "float64"))
    h = 10.0 ** log10_h
    errors = _explorer_curve(precision)
    chosen = float(finite_difference_errors([h], precision, n_params=24)[0])
    fig, ax = plotting.figure(f"Finite-difference error against step size ({precision})", "step size h (log scale)",
                              "relative error against autodiff (log scale)")
    ax.loglog(FD_STEPS, np.maximum(errors, 1e-17), "o-", label=precision)
    ax.loglog([h], [max(chosen, 1e-17)], "*", ms=16, color="black", label=f"h = {h:.1e}")
    ax.set_ylim(1e-12, 10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    best = int(np.argmin(errors))
    numbers = {"error at h": chosen, "best h on the grid": float(FD_STEPS[best]), "best error": float(errors[best])}
    lost = share_of_steps_lost(h, precision, n_params=24)
    if lost > 0:
        numbers["note"] = (f"w + h rounds back to w in {precision} for {lost:.0%} of the parameters: those "
                           "two evaluations are identical, so their derivative estimate is exactly 0.")
    return fig, numbers


# --------------------------------------------------------------------------- forward mode against reverse mode
def scalar_loss_of_inputs(n: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scalar function of ``n`` inputs, ``sum(tanh(A x))^2 / 64`` with a fixed random ``A`` of shape (64, n)."""
    check_int("n", n, 1, 100_000)
    a = torch.randn(64, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) / math.sqrt(n)
    return lambda x: torch.tanh(a @ x).sum() ** 2 / 64


def _first_forward_mode_call(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """The first forward-mode call of a session, with one known warning silenced.

    PyTorch's forward-mode AD loads its decompositions on first use by compiling them with
    ``torch.jit.script``, which torch 2.13 reports as deprecated (18 DeprecationWarnings that concern
    PyTorch's internals, not this code). They are silenced for that one call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        torch.func.jvp(f, (x,), (torch.ones_like(x),))


def forward_vs_reverse(n: int, seed: int = 0, rounds: int = 2) -> dict[str, float]:
    """The full gradient of a scalar function of ``n`` inputs by reverse mode (one ``vjp``) and forward mode.

    Forward mode needs one ``jvp`` per input direction (a basis vector), reverse mode one ``vjp`` for the
    whole gradient. Returns the counted passes, the largest |difference| and the seconds per gradient.
    """
    check_int("n", n, 1, 4096)
    check_int("rounds", rounds, 1, 20)
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
    grads = {}
    for name, method in (("reverse", reverse), ("forward", forward)):
        passes[name] = 0
        grads[name] = method()
    counted = dict(passes)
    with one_thread():
        seconds = time_many({"reverse": reverse, "forward": forward}, rounds=rounds, min_run_time=0.01)
    return {"n": n, "reverse passes": counted["reverse"], "forward passes": counted["forward"],
            "max |difference|": (grads["reverse"] - grads["forward"]).abs().max().item(),
            "reverse ms": seconds["reverse"] * 1e3, "forward ms": seconds["forward"] * 1e3}


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
    bounds = np.linspace(0, len(blocks), segments + 1).round().astype(int)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        x = checkpoint(blocks[start:stop], x, use_reentrant=False)
    return x


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
    with ``segments`` checkpointed segments, and the bytes of activations kept for backward either way.
    """
    check_int("batch", batch, 1, 4096)
    check_int("segments", segments, 1, depth)
    blocks = deep_tanh_stack(depth, width, seed, device)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_()
    seconds = time_many({"forward": lambda: run_blocks(blocks, x),
                         "forward + backward": lambda: run_blocks(blocks, x).sum().backward(),
                         "checkpointed": lambda: run_blocks(blocks, x, segments).sum().backward()},
                        rounds=rounds, min_run_time=0.03)
    return {"forward s": seconds["forward"], "forward + backward s": seconds["forward + backward"],
            "checkpointed s": seconds["checkpointed"], "bytes kept": bytes_kept_for_backward(blocks, x),
            "bytes kept checkpointed": bytes_kept_for_backward(blocks, x, segments),
            "bytes per activation": batch * width * x.element_size()}


# --------------------------------------------------------------------------- exercise checkers
def check_value_sin(sin: Callable[[Value], Value]) -> bool:
    """Check a learner's ``sin(v: Value) -> Value`` (forward value and backward rule) against torch."""
    first = exercises.attempt(sin, Value(0.3), what="value_sin")
    if first is exercises.NOT_ATTEMPTED:
        return False
    if not isinstance(first, Value):
        return exercises.wrong(f"value_sin must return a Value, got {type(first).__name__}",
                               "out = Value(math.sin(v.data), (v,), 'sin')")
    if not math.isclose(first.data, math.sin(0.3), rel_tol=1e-12):
        return exercises.wrong(f"sin(0.3) gave {first.data}, expected {math.sin(0.3)}",
                               "the forward value is math.sin(v.data)")
    for a, b in ((0.3, -1.2), (2.0, 0.7), (-1.5, 3.1)):
        x, y = Value(a), Value(b)
        (sin(x * y) * x + sin(x)).backward()
        tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b))
        (torch.sin(tx * ty) * tx + torch.sin(tx)).backward()
        if not (math.isclose(x.grad, tx.grad.item(), rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(y.grad, ty.grad.item(), rel_tol=1e-9, abs_tol=1e-12)):
            return exercises.wrong(
                f"at x={a}, y={b} your gradients are ({x.grad:.6g}, {y.grad:.6g}), torch's "
                f"({tx.grad.item():.6g}, {ty.grad.item():.6g})",
                "the local derivative is cos(v.data); multiply it by out.grad and ADD it to v.grad with +=")
    return exercises.correct("your sin backward rule matches torch.autograd in expressions that reuse a value.")


def check_linear_backward(linear_backward: Callable[..., Any], seed: int = 0) -> bool:
    """Check ``linear_backward(x, W, b, grad_out) -> (grad_x, grad_W, grad_b)`` for ``y = x W^T + b``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    W = torch.randn(4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True)
    grad_out = torch.randn(5, 4, dtype=torch.float64, generator=generator)
    result = exercises.attempt(linear_backward, x.detach(), W.detach(), b.detach(), grad_out, what="linear_backward")
    if result is exercises.NOT_ATTEMPTED:
        return False
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        return exercises.wrong("linear_backward must return three tensors (grad_x, grad_W, grad_b)")
    (x @ W.T + b).backward(grad_out)
    for name, got, ref in zip(("grad_x", "grad_W", "grad_b"), result, (x.grad, W.grad, b.grad)):
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.shape != ref.shape:
            return exercises.wrong(f"{name} has shape {tuple(got.shape)}; it must have shape {tuple(ref.shape)}, "
                                   "like the tensor it is the gradient of",
                                   "check which side grad_out multiplies and which dimension b's gradient sums over")
        if not torch.allclose(got, ref, rtol=1e-9, atol=1e-12):
            return exercises.wrong(f"{name} differs from autograd by up to {(got - ref).abs().max().item():.3g}",
                                   "grad_x = grad_out @ W, grad_W = grad_out.T @ x, grad_b = grad_out.sum(0)")
    return exercises.correct("your linear-layer backward matches torch.autograd for x, W and b.")
