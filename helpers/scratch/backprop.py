"""Backpropagation by hand in tensor form, and the two ways to check a gradient.

* :func:`manual_mlp_gradients` -- the backward pass of an MLP with one tanh hidden layer and softmax
  cross-entropy, written out with the forward pass's cached activations.
* :func:`central_difference` -- the gradient by finite differences, two loss evaluations per parameter.
* :class:`SigmoidFn` -- a custom autograd function with a hand-written backward, and
  :class:`BuggySigmoidFn`, the same with a planted bug for ``torch.autograd.gradcheck`` to catch.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from helpers.validation import check_float, check_int, check_shape

Params = dict[str, torch.Tensor]


def init_mlp_params(n_in: int = 8, n_hidden: int = 16, n_classes: int = 4, seed: int = 0,
                    dtype: torch.dtype = torch.float64) -> Params:
    """W1 (n_hidden, n_in), b1, W2 (n_classes, n_hidden), b2: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01)."""
    check_int("n_in", n_in, 1, 4096)
    check_int("n_hidden", n_hidden, 1, 4096)
    check_int("n_classes", n_classes, 2, 1000)
    generator = torch.Generator().manual_seed(seed)
    shapes = {"W1": (n_hidden, n_in), "b1": (n_hidden,), "W2": (n_classes, n_hidden), "b2": (n_classes,)}
    params = {}
    for name, shape in shapes.items():
        scale = 1.0 / math.sqrt(shape[1]) if len(shape) == 2 else 0.1
        params[name] = (torch.randn(*shape, generator=generator, dtype=dtype) * scale).requires_grad_()
    return params


def mlp_loss(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of ``tanh(x W1^T + b1) W2^T + b2``: the forward pass autograd differentiates."""
    h = torch.tanh(x @ params["W1"].T + params["b1"])
    return torch.nn.functional.cross_entropy(h @ params["W2"].T + params["b2"], y)


def manual_mlp_gradients(params: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
    """The backward pass of :func:`mlp_loss`, by hand: the chain rule, one layer at a time.

    Forward, caching what backward needs: z1 = x W1^T + b1, h = tanh(z1), logits = h W2^T + b2,
    p = softmax(logits). Backward: dlogits = (p - onehot(y)) / n, then through each linear layer
    (dW = dz^T input, dinput = dz W, db = column sums of dz) and through tanh (dz = dh (1 - h^2)).
    """
    check_shape("x", x, (None, params["W1"].shape[1]))
    check_shape("y", y, (x.shape[0],))
    W1, b1, W2, b2 = (params[name].detach() for name in ("W1", "b1", "W2", "b2"))
    n = x.shape[0]
    h = torch.tanh(x @ W1.T + b1)                      # (n, hidden)   cached for backward
    p = torch.softmax(h @ W2.T + b2, dim=1)            # (n, classes)  cached for backward
    dlogits = p.clone()
    dlogits[torch.arange(n), y] -= 1.0
    dlogits /= n                                       # (n, classes)  d(mean CE)/dlogits = (p - onehot) / n
    dW2, db2 = dlogits.T @ h, dlogits.sum(0)           # (classes, hidden), (classes,)
    dh = dlogits @ W2                                  # (n, hidden)
    dz1 = dh * (1.0 - h * h)                           # (n, hidden)   tanh'(z) = 1 - tanh(z)^2, from the cache
    dW1, db1 = dz1.T @ x, dz1.sum(0)                   # (hidden, n_in), (hidden,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def central_difference(f: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor,
                       h: float) -> tuple[torch.Tensor, int]:
    """Gradient of a scalar ``f`` at the flat vector ``w`` by centred differences, and the evaluations it took.

    df/dw_i ~ (f(w + h e_i) - f(w - h e_i)) / 2h: truncation error O(h^2), round-off error O(eps / h),
    and two evaluations of ``f`` for every parameter.
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


def toy_loss(n_params: int = 40, seed: int = 0) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """A smooth scalar loss of a flat parameter vector, and its parameter count.

    The loss is the mean squared error of a tanh layer (4 inputs, ``n_params // 4`` outputs) on 16
    fixed random examples; it computes in the dtype of the vector it is given.
    """
    check_int("n_params", n_params, 4, 100_000)
    generator = torch.Generator().manual_seed(seed)
    n_in, n_out = 4, n_params // 4
    x = torch.randn(16, n_in, generator=generator, dtype=torch.float64)            # (16, n_in)
    target = torch.randn(16, n_out, generator=generator, dtype=torch.float64)      # (16, n_out)

    def loss(w: torch.Tensor) -> torch.Tensor:
        weight = w[: n_in * n_out].reshape(n_out, n_in)                            # (n_out, n_in)
        prediction = torch.tanh(x.to(w.dtype) @ weight.T)                          # (16, n_out)
        return ((prediction - target.to(w.dtype)) ** 2).mean()
    return loss, n_in * n_out


class SigmoidFn(torch.autograd.Function):
    """A sigmoid with a hand-written backward: d sigma/dx = sigma (1 - sigma), from the saved output."""

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
    """The same sigmoid (forward inherited) with a planted bug: its backward forgets the (1 - sigma) factor."""

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_out * s
