"""A scalar reverse-mode automatic differentiation engine, in the spirit of Karpathy's micrograd.

Every operation on a :class:`Value` creates a new node that remembers its inputs (``children``) and
the local derivative of its output with respect to each input (``local_grads``), computed once, in
the forward pass, where the inputs are at hand. ``backward()`` then visits the graph once, output
first, and applies the chain rule at every node:

    child.grad += local_grad * node.grad

The ``+=`` matters: a value used twice receives gradient along both paths ("sum over paths"), and
multiplying local derivatives along a path is the chain rule ("multiply along paths").
"""
from __future__ import annotations

import math
from collections.abc import Callable

Number = int | float


class Value:
    """A scalar that remembers how it was computed, so gradients can flow back through it.

    ``data`` is the number; ``grad`` is dLoss/d(this value) after ``backward()`` on the loss.
    """

    def __init__(self, data: Number, children: tuple[Value, ...] = (), op: str = "", label: str = "") -> None:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ValueError(f"data must be a real number, got {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self.children = tuple(children)
        self.op = op
        self.label = label
        self.local_grads: tuple[float, ...] = ()
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"

    def _node(self, data: float, children: tuple[Value, ...], op: str, local_grads: tuple[float, ...]) -> Value:
        """The output node of an operation; ``local_grads[i]`` is d(output)/d(children[i])."""
        out = Value(data, children, op)
        out.local_grads = local_grads

        def backward() -> None:
            for child, local_grad in zip(children, local_grads):
                child.grad += local_grad * out.grad      # chain rule, accumulated over every use
        out._backward = backward
        return out

    # binary operations: d(a+b) = (1, 1), d(a*b) = (b, a), d(a**k) = k a**(k-1) ------------
    def __add__(self, other: Value | Number) -> Value:
        other = as_value(other)
        return self._node(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __mul__(self, other: Value | Number) -> Value:
        other = as_value(other)
        return self._node(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
            raise ValueError(f"exponent must be an int or float constant, got {exponent!r}")
        if self.data <= 0 and not float(exponent).is_integer():
            raise ValueError(f"a non-integer power needs a positive base, got base {self.data}")
        if self.data == 0 and exponent < 1:
            raise ValueError(f"0 ** {exponent} has no finite derivative")
        return self._node(self.data ** exponent, (self,), f"**{exponent:g}", (exponent * self.data ** (exponent - 1),))

    def __truediv__(self, other: Value | Number) -> Value:
        other = as_value(other)
        if other.data == 0:
            raise ValueError("division by a Value whose data is 0")
        return self * other ** -1

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-as_value(other))

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return as_value(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return as_value(other) / self

    # unary functions: each local derivative reuses the forward result where it can ----------
    def exp(self) -> Value:
        if self.data > 700:
            raise ValueError(f"exp overflows float64 for data > 700, got {self.data}")
        e = math.exp(self.data)
        return self._node(e, (self,), "exp", (e,))                        # (e^x)' = e^x

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive input, got {self.data}")
        return self._node(math.log(self.data), (self,), "log", (1.0 / self.data,))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return self._node(t, (self,), "tanh", (1.0 - t * t,))             # tanh' = 1 - tanh^2

    def relu(self) -> Value:
        return self._node(max(self.data, 0.0), (self,), "relu", (float(self.data > 0),))

    def sigmoid(self) -> Value:
        e = math.exp(-abs(self.data))                                      # never overflows
        s = 1.0 / (1.0 + e) if self.data >= 0 else e / (1.0 + e)
        return self._node(s, (self,), "sigmoid", (s * (1.0 - s),))        # sigma' = sigma (1 - sigma)

    # the reverse pass -------------------------------------------------------------------------
    def backward(self) -> int:
        """Set ``grad`` of every node this value depends on; return how many nodes were visited.

        Gradients are zeroed first and the output's own gradient is 1 (dL/dL). Each node's backward
        runs exactly once, after every node that uses it (reverse topological order), so the
        gradient it passes on is complete.
        """
        order = topological_order(self)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
        return len(order)


def as_value(x: Value | Number) -> Value:
    """Wrap a plain number as a constant ``Value``."""
    return x if isinstance(x, Value) else Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, each listed after all of its inputs (depth-first, no recursion)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in node.children if id(child) not in seen)
    return order
