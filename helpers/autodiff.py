"""Automatic differentiation from scratch, and how it compares with the alternatives.

* :class:`Value` -- a scalar reverse-mode autodiff engine (in the spirit of Karpathy's
  micrograd): every operation records its inputs and a closure that applies its local
  derivative; ``backward()`` visits the graph once in reverse topological order.
* :func:`draw_graph` -- the computational graph of a ``Value`` expression (matplotlib only).
* :func:`manual_mlp_gradients` -- the backward pass of a 2-layer MLP with softmax
  cross-entropy written out in tensor form, and :func:`compare_gradients` to check it.
* Finite differences (:func:`central_difference`, :func:`finite_difference_errors`,
  :func:`finite_difference_cost`), ``gradcheck`` on a custom ``autograd.Function`` with and
  without a planted bug, and forward- vs reverse-mode passes (:func:`forward_vs_reverse`).
* Checkers for the notebook's "Your turn" exercises.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from helpers.validation import check_choice, check_float, check_int, check_shape
from helpers.config import one_thread as single_thread

Number = int | float


# --------------------------------------------------------------------------- scalar engine
class Value:
    """A scalar that remembers how it was computed, so gradients can flow back through it.

    ``data`` is the number, ``grad`` is dLoss/dthis after ``backward()``. Each operation
    computes its local derivative once, in the forward pass, and the backward closure only
    multiplies it by the upstream gradient (the chain rule) and accumulates (``+=``), because
    a value used twice receives gradient from both uses.
    """

    def __init__(self, data: Number, children: tuple["Value", ...] = (), op: str = "", label: str = "") -> None:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ValueError(f"data must be a real number, got {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self.children = tuple(children)
        self.op = op
        self.label = label
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"

    def _new(self, data: float, children: tuple["Value", ...], op: str,
             local: tuple[float, ...]) -> "Value":
        """Create the output node; ``local[i]`` is d(out)/d(children[i]), computed once here."""
        out = Value(data, children, op)

        def backward() -> None:
            for child, derivative in zip(children, local):
                child.grad += derivative * out.grad
        out._backward = backward
        return out

    # binary operations ----------------------------------------------------------------
    def __add__(self, other: "Value | Number") -> "Value":
        other = as_value(other)
        return self._new(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __mul__(self, other: "Value | Number") -> "Value":
        other = as_value(other)
        return self._new(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __pow__(self, exponent: Number) -> "Value":
        if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
            raise ValueError(f"exponent must be an int or float constant, got {exponent!r}")
        if self.data <= 0 and not float(exponent).is_integer():
            raise ValueError(f"a non-integer power needs a positive base, got base {self.data}")
        if self.data == 0 and exponent < 1:
            raise ValueError(f"0 ** {exponent} has no finite derivative")
        return self._new(self.data ** exponent, (self,), f"**{exponent:g}",
                         (exponent * self.data ** (exponent - 1),))

    def __truediv__(self, other: "Value | Number") -> "Value":
        other = as_value(other)
        if other.data == 0:
            raise ValueError("division by a Value whose data is 0")
        return self * other ** -1

    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other: "Value | Number") -> "Value":
        return self + (-as_value(other))

    def __radd__(self, other: Number) -> "Value":
        return self + other

    def __rmul__(self, other: Number) -> "Value":
        return self * other

    def __rsub__(self, other: Number) -> "Value":
        return as_value(other) - self

    def __rtruediv__(self, other: Number) -> "Value":
        return as_value(other) / self

    # unary functions --------------------------------------------------------------------
    def exp(self) -> "Value":
        if self.data > 700:
            raise ValueError(f"exp overflows float64 for data > 700, got {self.data}")
        e = math.exp(self.data)
        return self._new(e, (self,), "exp", (e,))

    def log(self) -> "Value":
        if self.data <= 0:
            raise ValueError(f"log needs a positive input, got {self.data}")
        return self._new(math.log(self.data), (self,), "log", (1.0 / self.data,))

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        return self._new(t, (self,), "tanh", (1.0 - t * t,))

    def relu(self) -> "Value":
        return self._new(max(self.data, 0.0), (self,), "relu", (float(self.data > 0),))

    def sigmoid(self) -> "Value":
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1.0 + math.exp(self.data))
        return self._new(s, (self,), "sigmoid", (s * (1.0 - s),))

    # reverse pass -----------------------------------------------------------------------
    def backward(self) -> int:
        """Set ``grad`` of every node that this value depends on; return how many nodes were visited.

        Gradients are zeroed first, the output's own gradient is 1, and each node's backward
        closure runs exactly once, after every node that uses it (reverse topological order).
        """
        order = topological_order(self)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
        return len(order)


def as_value(x: "Value | Number") -> Value:
    """Wrap a plain number as a constant ``Value``."""
    return x if isinstance(x, Value) else Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, each listed after all of its inputs (iterative DFS)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in node.children if id(child) not in seen)
    return order


# --------------------------------------------------------------------------- graph drawing
def draw_graph(root: Value, title: str = "Computational graph (forward values and gradients)"):
    """Draw the graph of ``root``: one box per value (label, data, grad), arrows from inputs to outputs.

    Columns are the longest distance from a leaf, so inputs are on the left and the output on
    the right. Uses matplotlib only. Graphs above 60 nodes are refused (they would not read).
    """
    from helpers.plotting import figure

    order = topological_order(root)
    if len(order) > 60:
        raise ValueError(f"root's graph must have at most 60 nodes to be drawn, got {len(order)}")
    depth: dict[int, int] = {}
    for node in order:
        depth[id(node)] = 1 + max((depth[id(c)] for c in node.children), default=-1)
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    pos = {}
    for d, nodes in columns.items():
        for i, node in enumerate(nodes):
            pos[id(node)] = (d, i - (len(nodes) - 1) / 2)
    n_cols, n_rows = len(columns), max(len(v) for v in columns.values())
    fig, ax = figure(title, "graph depth (leaves on the left, output on the right)", "nodes at this depth",
                     figsize=(max(6.4, 2.3 * n_cols), max(3.0, 1.1 * n_rows + 1)))
    ax.grid(False)
    ax.set_yticks([])
    for node in order:
        x, y = pos[id(node)]
        for child in node.children:
            cx, cy = pos[id(child)]
            bend = 0.0 if x - cx == 1 else -0.25 if cy <= y else 0.25
            ax.annotate("", xy=(x - 0.3, y), xytext=(cx + 0.3, cy),
                        arrowprops=dict(arrowstyle="->", color="0.5", lw=1, connectionstyle=f"arc3,rad={bend}"))
        name = node.label or (node.op if node.op else "const")
        op = f"[{node.op}] " if node.op and node.label else ""
        ax.text(x, y, f"{op}{name}\ndata {node.data:.3g}\ngrad {node.grad:.3g}", ha="center", va="center",
                fontsize=8, bbox=dict(boxstyle="round", fc="#DCEBF7" if not node.children else "#FBE3D6",
                                      ec="0.4"))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-n_rows / 2 - 0.2, n_rows / 2 + 0.2)
    ax.set_xticks(range(n_cols))
    return fig


# --------------------------------------------------------------------------- checks against torch
_UNARY = ("exp", "log", "tanh", "relu", "sigmoid", "pow")
_BINARY = ("+", "-", "*", "/")


def random_program(n_inputs: int, n_ops: int, seed: int) -> list[tuple[str, int, int]]:
    """A random straight-line program over ``n_inputs`` scalars: a list of (op, i, j) steps.

    Operands index earlier nodes; the ops are guarded (see :func:`run_program`) so every value
    stays finite and every ``log``/division is defined.
    """
    check_int("n_inputs", n_inputs, 1, 50)
    check_int("n_ops", n_ops, 1, 500)
    rng = random.Random(seed)
    steps = []
    for k in range(n_ops):
        size = n_inputs + k
        op = rng.choice(_UNARY + _BINARY)
        steps.append((op, rng.randrange(size), rng.randrange(size)))
    return steps


def run_program(steps: Sequence[tuple[str, int, int]], inputs: Sequence[Any]) -> Any:
    """Evaluate ``steps`` on ``inputs`` (``Value`` objects or 0-d torch tensors); return the sum of all nodes.

    Guards keep it finite: ``log(1 + a*a)``, ``exp(tanh(a))``, ``a / (1 + b*b)``, ``(a*a + 1) ** 1.5``.
    """
    nodes = list(inputs)

    def fn(x: Any, name: str) -> Any:
        return getattr(x, name)() if isinstance(x, Value) else getattr(torch, name)(x)

    for op, i, j in steps:
        a, b = nodes[i], nodes[j]
        out = {"exp": lambda: fn(fn(a, "tanh"), "exp"), "log": lambda: fn(a * a + 1.0, "log"),
               "tanh": lambda: fn(a, "tanh"), "relu": lambda: fn(a, "relu"),
               "sigmoid": lambda: fn(a, "sigmoid"), "pow": lambda: (a * a + 1.0) ** 1.5,
               "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
               "/": lambda: a / (b * b + 1.0)}[op]()
        nodes.append(out)
    total = nodes[0]
    for node in nodes[1:]:
        total = total + node
    return total


def compare_with_torch(n_expressions: int = 20, n_inputs: int = 4, n_ops: int = 12, seed: int = 0) -> dict[str, float]:
    """Gradients of random expressions from :class:`Value` vs ``torch.autograd`` in float64.

    Returns the largest absolute and relative gradient difference over all expressions and inputs.
    """
    check_int("n_expressions", n_expressions, 1, 1000)
    rng = random.Random(seed)
    worst_abs, worst_rel, n_grads = 0.0, 0.0, 0
    for k in range(n_expressions):
        steps = random_program(n_inputs, n_ops, seed * 100_003 + k)
        xs = [rng.uniform(-2.0, 2.0) for _ in range(n_inputs)]
        ours = [Value(x, label=f"x{i}") for i, x in enumerate(xs)]
        run_program(steps, ours).backward()
        theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
        run_program(steps, theirs).backward()
        for v, t in zip(ours, theirs):
            diff = abs(v.grad - t.grad.item())
            worst_abs = max(worst_abs, diff)
            worst_rel = max(worst_rel, diff / max(abs(t.grad.item()), 1e-12))
            n_grads += 1
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "n_gradients": n_grads}


# --------------------------------------------------------------------------- manual MLP backward
def init_mlp_params(n_in: int = 8, n_hidden: int = 16, n_classes: int = 4, seed: int = 0,
                    dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Parameters of a 2-layer MLP (W1, b1, W2, b2) with Xavier-like scale, leaf tensors needing grad."""
    check_int("n_in", n_in, 1, 4096)
    check_int("n_hidden", n_hidden, 1, 4096)
    check_int("n_classes", n_classes, 2, 1000)
    gen = torch.Generator().manual_seed(seed)
    shapes = {"W1": (n_hidden, n_in), "b1": (n_hidden,), "W2": (n_classes, n_hidden), "b2": (n_classes,)}
    params = {}
    for name, shape in shapes.items():
        scale = 1.0 / math.sqrt(shape[-1]) if len(shape) == 2 else 0.1
        params[name] = (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()
    return params


def mlp_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of the MLP ``tanh(x W1^T + b1) W2^T + b2`` (autograd reference)."""
    h = torch.tanh(x @ params["W1"].T + params["b1"])
    return torch.nn.functional.cross_entropy(h @ params["W2"].T + params["b2"], y)


def manual_mlp_gradients(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The backward pass of :func:`mlp_loss` written by hand, in tensor form.

    Forward (cache what backward needs): z1 = x W1^T + b1, h = tanh(z1), logits = h W2^T + b2,
    p = softmax(logits). Backward: dlogits = (p - onehot(y)) / n, then the chain rule
    layer by layer, reusing h and p from the forward pass.
    """
    check_shape("x", x, (None, params["W1"].shape[1]))
    check_shape("y", y, (x.shape[0],))
    W1, b1, W2, b2 = (params[k].detach() for k in ("W1", "b1", "W2", "b2"))
    n = x.shape[0]
    h = torch.tanh(x @ W1.T + b1)                      # forward, cached
    logits = h @ W2.T + b2
    p = torch.softmax(logits, dim=1)
    dlogits = p.clone()                                # d(mean CE)/d logits = (p - onehot) / n
    dlogits[torch.arange(n), y] -= 1.0
    dlogits /= n
    dW2, db2 = dlogits.T @ h, dlogits.sum(0)           # logits = h W2^T + b2
    dh = dlogits @ W2
    dz1 = dh * (1.0 - h * h)                           # tanh'(z) = 1 - tanh(z)^2, from the cache
    dW1, db1 = dz1.T @ x, dz1.sum(0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def compare_gradients(manual: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                      rtol: float = 1e-7, atol: float = 1e-10) -> list[dict[str, Any]]:
    """One row per parameter: is the manual gradient bit-exact, close (allclose), and the max |difference|."""
    rows = []
    for name, ref in reference.items():
        if name not in manual:
            raise ValueError(f"manual is missing the gradient of {name!r}")
        got = manual[name].detach()
        if got.shape != ref.shape:
            raise ValueError(f"gradient of {name!r} must have shape {tuple(ref.shape)}, got {tuple(got.shape)}")
        rows.append({"parameter": name, "shape": tuple(ref.shape), "exact": bool(torch.equal(got, ref)),
                     "close": bool(torch.allclose(got, ref, rtol=rtol, atol=atol)),
                     "max_abs_diff": (got - ref).abs().max().item()})
    return rows


def autograd_gradients(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference gradients of :func:`mlp_loss` from ``torch.autograd.grad``."""
    grads = torch.autograd.grad(mlp_loss(params, x, y), list(params.values()))
    return dict(zip(params, grads))


# --------------------------------------------------------------------------- finite differences


def central_difference(f: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor, h: float) -> tuple[torch.Tensor, int]:
    """Gradient of scalar ``f`` at flat ``w`` by centred differences (f(w+h e_i) - f(w-h e_i)) / 2h.

    Returns the estimate and the number of evaluations of ``f`` it took (two per parameter).
    """
    check_float("h", h, 0.0, 1.0, lo_open=True)
    if w.dim() != 1 or w.numel() > 100_000:
        raise ValueError(f"w must be a flat vector of at most 100000 numbers, got shape {tuple(w.shape)}")
    grad, evaluations = torch.empty_like(w), 0
    with torch.no_grad():
        for i in range(w.numel()):
            step = torch.zeros_like(w)
            step[i] = h
            grad[i] = (f(w + step) - f(w - step)) / (2 * h)
            evaluations += 2
    return grad, evaluations


def test_function(n_params: int = 40, seed: int = 0) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """A smooth scalar loss of a flat parameter vector: a small tanh layer on fixed data.

    Returns ``f(w)`` (works in the dtype of ``w``) and the parameter count. The data are
    created in float64 and cast to ``w``'s dtype on each call.
    """
    check_int("n_params", n_params, 2, 100_000)
    gen = torch.Generator().manual_seed(seed)
    n_in = 4
    n_out = max(1, n_params // n_in)
    x = torch.randn(16, n_in, generator=gen, dtype=torch.float64)
    target = torch.randn(16, n_out, generator=gen, dtype=torch.float64)

    def f(w: torch.Tensor) -> torch.Tensor:
        weight = w[: n_in * n_out].reshape(n_out, n_in)
        pred = torch.tanh(x.to(w.dtype) @ weight.T)
        return ((pred - target.to(w.dtype)) ** 2).mean()
    return f, n_in * n_out


def finite_difference_errors(hs: Sequence[float], dtype: str = "float64", n_params: int = 40,
                             seed: int = 0) -> np.ndarray:
    """Relative error ||g_fd - g_autodiff|| / ||g_autodiff|| of centred differences for each step ``h``.

    The finite differences run in ``dtype`` (float32 or float64); the reference gradient is
    autodiff in float64. Small h suffers round-off (error ~ eps/h), large h truncation (~h^2).
    """
    check_choice("dtype", dtype, ("float32", "float64"))
    if not 1 <= len(hs) <= 100:
        raise ValueError(f"hs must hold 1 to 100 step sizes, got {len(hs)}")
    f, n = test_function(n_params, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    w64 = torch.randn(n, generator=gen, dtype=torch.float64)
    leaf = w64.clone().requires_grad_()
    (reference,) = torch.autograd.grad(f(leaf), leaf)
    w = w64.to(getattr(torch, dtype))
    errors = []
    for h in hs:
        estimate, _ = central_difference(f, w, float(h))
        errors.append(((estimate.double() - reference).norm() / reference.norm()).item())
    return np.array(errors)


def finite_difference_cost(param_counts: Sequence[int], seed: int = 0, repeats: int = 3) -> dict[str, np.ndarray]:
    """Evaluations and seconds for one full gradient by finite differences vs reverse-mode autodiff.

    Runs on the CPU in one thread after a warm-up call. Times are the fastest of ``repeats`` runs
    (``10 * repeats`` for autodiff): on a shared machine, load only ever adds time, so the minimum
    is the steadiest estimate.

    For each parameter count: ``fd_evals`` and ``ad_evals`` (function evaluations counted by a
    wrapper), ``fd_seconds`` and ``ad_seconds``, and their ratio.
    """
    check_int("repeats", repeats, 1, 20)
    for n in param_counts:
        check_int("param_counts", n, 4, 20_000)
    out: dict[str, list] = {"params": [], "fd_evals": [], "ad_evals": [], "fd_seconds": [], "ad_seconds": []}
    with single_thread():
        for n in param_counts:
            _cost_of_one(n, seed, repeats, out)
    result = {k: np.array(v) for k, v in out.items()}
    result["time_ratio"] = result["fd_seconds"] / result["ad_seconds"]
    return result


def _cost_of_one(n: int, seed: int, repeats: int, out: dict[str, list]) -> None:
    """Time one full gradient of a ``n``-parameter loss both ways and append to ``out``."""
    f, n_real = test_function(n, seed)
    calls = [0]

    def counted(w: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return f(w)
    w = torch.randn(n_real, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    fd_times, ad_times = [], []
    counted(w.clone().requires_grad_()).backward()  # warm-up
    for _ in range(repeats):
        calls[0] = 0
        start = time.perf_counter()
        central_difference(counted, w, 1e-5)
        fd_times.append(time.perf_counter() - start)
        fd_evals = calls[0]
    for _ in range(10 * repeats):  # autodiff is cheap: time it more often
        calls[0] = 0
        start = time.perf_counter()
        wg = w.clone().requires_grad_()
        counted(wg).backward()
        ad_times.append(time.perf_counter() - start)
    for key, value in (("params", n_real), ("fd_evals", fd_evals), ("ad_evals", calls[0]),
                       ("fd_seconds", min(fd_times)), ("ad_seconds", min(ad_times))):
        out[key].append(value)


def _integer_log_axis(ax, values: Sequence[int]) -> None:
    """Log-scale x axis with one plain integer label per measured size."""
    ax.set_xscale("log")
    ax.set_xticks(list(values), [str(int(v)) for v in values])
    ax.minorticks_off()


def cost_figure(cost: dict[str, np.ndarray], device: str = "cpu"):
    """Two panels: loss evaluations and seconds per full gradient vs parameter count, FD vs autodiff."""
    from helpers.plotting import figure

    fig, (left, right) = figure("Cost of one full gradient", "number of parameters (log scale)",
                                "loss evaluations per gradient (log scale)", ncols=2)
    right.set_ylabel(f"ms per gradient ({device}, 1 thread, log)")
    for ax, key, scale in ((left, "evals", 1.0), (right, "seconds", 1e3)):
        ax.plot(cost["params"], cost[f"fd_{key}"] * scale, "o-", label="finite differences")
        ax.plot(cost["params"], cost[f"ad_{key}"] * scale, "s-", label="autodiff (forward + backward)")
        ax.set_yscale("log")
        _integer_log_axis(ax, cost["params"])
        ax.legend()
    return fig


def modes_figure(modes: Sequence[dict[str, float]], device: str = "cpu"):
    """Time per full gradient vs number of inputs, forward mode (n jvp) vs reverse mode (1 vjp)."""
    from helpers.plotting import figure

    sizes = [m["n"] for m in modes]
    fig, ax = figure("Full gradient of a scalar loss: forward vs reverse mode", "number of inputs n (log scale)",
                     f"time per gradient (ms, {device}, 1 thread, log scale)")
    ax.plot(sizes, [m["forward_seconds"] * 1e3 for m in modes], "o-", label="forward mode (n jvp passes)")
    ax.plot(sizes, [m["reverse_seconds"] * 1e3 for m in modes], "s-", label="reverse mode (1 vjp pass)")
    ax.set_yscale("log")
    _integer_log_axis(ax, sizes)
    ax.legend()
    return fig


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (1 means y grows linearly with x)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2 or not np.all(np.isfinite(lx)) or not np.all(np.isfinite(ly)):
        raise ValueError("x and y must hold at least two positive numbers each")
    return float(np.polyfit(lx, ly, 1)[0])


# --------------------------------------------------------------------------- gradcheck
class SigmoidFn(torch.autograd.Function):
    """A custom sigmoid with a correct backward: d sigma/dx = sigma (1 - sigma), from the saved output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_out * s * (1 - s)


class BuggySigmoidFn(SigmoidFn):
    """The same sigmoid (forward inherited) with a planted bug: the backward forgets the (1 - sigma) factor."""

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_out * s


def run_gradcheck(fn: Callable[[torch.Tensor], torch.Tensor], n: int = 6, seed: int = 0) -> bool:
    """``torch.autograd.gradcheck`` of ``fn`` on a random float64 vector; True when the backward is right."""
    check_int("n", n, 1, 1000)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    return bool(torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, raise_exception=False))


# --------------------------------------------------------------------------- forward vs reverse mode
def scalar_loss_of_inputs(n: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scalar function of ``n`` inputs: ``sum(tanh(A x)) ** 2 / m`` with a fixed random ``A`` (m = 64)."""
    check_int("n", n, 1, 100_000)
    a = torch.randn(64, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) / math.sqrt(n)
    return lambda x: torch.tanh(a @ x).sum() ** 2 / 64


def forward_vs_reverse(n: int, seed: int = 0, repeats: int = 3) -> dict[str, float]:
    """Full gradient of a scalar function of ``n`` inputs by reverse mode (one ``vjp``) and forward mode.

    Forward mode needs one ``jvp`` per input direction (basis vector), reverse mode one ``vjp``
    for the whole gradient. Returns the pass counts, the max |difference| and median times.
    """
    check_int("n", n, 1, 4096)
    check_int("repeats", repeats, 1, 20)
    f = scalar_loss_of_inputs(n, seed)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    passes = {"forward": 0, "reverse": 0}
    basis = torch.eye(n, dtype=x.dtype)

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
    grads, times = {}, {"forward": [], "reverse": []}
    torch.func.jvp(f, (x,), (basis[0],))  # warm-up: the first torch.func call pays one-off set-up costs
    reverse()
    with single_thread():
        for _ in range(repeats):
            for name, run in (("reverse", reverse), ("forward", forward)):
                passes[name] = 0
                start = time.perf_counter()
                grads[name] = run()
                times[name].append(time.perf_counter() - start)
    return {"n": n, "reverse_passes": passes["reverse"], "forward_passes": passes["forward"],
            "max_abs_diff": (grads["reverse"] - grads["forward"]).abs().max().item(),
            "reverse_seconds": float(np.median(times["reverse"])), "forward_seconds": float(np.median(times["forward"]))}


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts); floats in 3 significant digits."""
    if not rows:
        raise ValueError("rows must hold at least one dict")
    columns = list(columns or rows[0])

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- exercise checkers
def _attempted(fn: Callable[..., Any], *args: Any, what: str) -> Any:
    """Call a learner's function; ``None`` signals an untouched stub."""
    try:
        result = fn(*args)
    except NotImplementedError:
        print(f"Not attempted yet: {what}. Replace the NotImplementedError and run the cell again.")
        return None
    if result is None:
        print(f"Not attempted yet: {what} returned None.")
    return result


def check_value_sin(sin: Callable[[Value], Value]) -> bool:
    """Check a learner's ``sin(v: Value) -> Value`` (forward value and backward rule) against torch."""
    first = _attempted(sin, Value(0.3), what="sin(Value)")
    if first is None:
        return False
    if not isinstance(first, Value):
        raise AssertionError(f"sin must return a Value, got {type(first).__name__}. Hint: out = Value(math.sin(v.data), (v,), 'sin').")
    if not math.isclose(first.data, math.sin(0.3), rel_tol=1e-12):
        raise AssertionError(f"forward value wrong: sin(0.3) gave {first.data}, expected {math.sin(0.3)}.")
    for a, b in ((0.3, -1.2), (2.0, 0.7), (-1.5, 3.1)):
        x, y = Value(a), Value(b)
        (sin(x * y) * x + sin(x)).backward()
        tx = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        ty = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        (torch.sin(tx * ty) * tx + torch.sin(tx)).backward()
        if not (math.isclose(x.grad, tx.grad.item(), rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(y.grad, ty.grad.item(), rel_tol=1e-9, abs_tol=1e-12)):
            raise AssertionError(
                f"gradients differ from torch at x={a}, y={b}: yours ({x.grad:.6g}, {y.grad:.6g}), "
                f"torch ({tx.grad.item():.6g}, {ty.grad.item():.6g}). Hint: the local derivative is cos(v.data), "
                "multiply it by out.grad and ACCUMULATE into v.grad with +=.")
    print("Correct: your sin backward rule matches torch.autograd on composite expressions.")
    return True


def check_linear_backward(linear_backward: Callable[..., Any], seed: int = 0) -> bool:
    """Check ``linear_backward(x, W, b, grad_out) -> (grad_x, grad_W, grad_b)`` for ``y = x W^T + b``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    W = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    grad_out = torch.randn(5, 4, dtype=torch.float64, generator=gen)
    result = _attempted(linear_backward, x.detach(), W.detach(), b.detach(), grad_out, what="linear_backward")
    if result is None:
        return False
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        raise AssertionError("linear_backward must return a tuple (grad_x, grad_W, grad_b).")
    (x @ W.T + b).backward(grad_out)
    for name, got, ref in zip(("grad_x", "grad_W", "grad_b"), result, (x.grad, W.grad, b.grad)):
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.shape != ref.shape:
            raise AssertionError(f"{name} must have shape {tuple(ref.shape)} (like the tensor it is the gradient of), "
                                 f"got {tuple(got.shape)}. Hint: check which side grad_out is multiplied on and "
                                 "which dimension b's gradient sums over.")
        if not torch.allclose(got, ref, rtol=1e-9, atol=1e-12):
            raise AssertionError(f"{name} differs from autograd (max |diff| {(got - ref).abs().max().item():.3g}). "
                                 "Hint: grad_x = grad_out @ W, grad_W = grad_out.T @ x, grad_b = grad_out.sum(0).")
    print("Correct: your linear-layer backward matches torch.autograd for x, W and b.")
    return True
