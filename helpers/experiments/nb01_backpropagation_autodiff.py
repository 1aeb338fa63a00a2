"""Notebook 01, sections 1-2: the autodiff engine checked against torch, how autograd behaves, finite
differences and gradient checking, and the exercise checkers.

The science lives in :mod:`helpers.scratch.autodiff` (the scalar engine) and :mod:`helpers.scratch.backprop`
(manual backward, finite differences, custom autograd functions); this module runs and draws them. What a
gradient costs is measured in :mod:`helpers.experiments.nb01_backpropagation_cost`.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from helpers import exercises, plotting
from helpers.scratch.autodiff import Value, topological_order
from helpers.scratch.backprop import central_difference, mlp_loss, toy_loss
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


# --------------------------------------------------------------------------- how autograd behaves
def autograd_behaviours(seed: int = 0) -> dict[str, float | str]:
    """Four behaviours of ``torch.autograd`` that interviewers ask about, each measured on a small example.

    * ``.grad`` accumulates: a second ``backward()`` without zeroing adds the same gradient again (ratio
      2), and four micro-batches whose losses are divided by 4 add up to the full batch's gradient.
    * An in-place change to a tensor that autograd saved for backward makes ``backward()`` fail.
    * ``detach()`` cuts a path: d(a * a.detach())/da is a, not 2a.
    * ReLU at exactly 0 gets slope 0 (a subgradient); exact zeros are rare in float32 pre-activations.
    """
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(5, dtype=torch.float64, generator=generator, requires_grad=True)
    x = torch.randn(64, 5, dtype=torch.float64, generator=generator)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        return torch.tanh(batch @ w).square().mean()

    loss(x).backward()
    once = w.grad.clone()
    loss(x).backward()                                             # no zero_grad in between
    twice = w.grad.clone()
    w.grad = None
    for micro_batch in x.chunk(4):
        (loss(micro_batch) / 4).backward()                         # gradient accumulation
    accumulated = w.grad.clone()

    a = torch.randn(3, generator=generator, requires_grad=True)
    saved = torch.sigmoid(a)                                       # sigmoid keeps its output for backward
    saved.mul_(2)
    try:
        saved.sum().backward()
        in_place = "no error"
    except RuntimeError as error:
        in_place = str(error).split(":")[0]

    b = torch.tensor(3.0, requires_grad=True)
    (b * b.detach()).backward()
    zero = torch.zeros((), requires_grad=True)
    torch.relu(zero).backward()
    pre_activations = torch.randn(256, 40, generator=generator) @ torch.randn(40, 1000, generator=generator)
    return {"second backward / first": (twice / once).mean().item(),
            "4 micro-batches vs full batch (max |diff|)": (accumulated - once).abs().max().item(),
            "in-place change of a saved tensor": in_place,
            "d(b * b.detach())/db at b = 3": b.grad.item(), "ReLU slope at exactly 0": zero.grad.item(),
            "share of pre-activations exactly 0": (pre_activations == 0).double().mean().item()}


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
