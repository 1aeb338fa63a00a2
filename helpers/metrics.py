"""Metrics: accuracy, NLL, and per-layer gradient and activation statistics."""
from __future__ import annotations

import torch
from torch import nn

from helpers.validation import check_float


def check_logits(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``logits`` is (n, classes) and ``labels`` is (n,)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (n, classes), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the label."""
    check_logits(logits, labels)
    return (logits.argmax(-1) == labels).float().mean().item()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits) (= cross-entropy)."""
    check_logits(logits, labels)
    return nn.functional.cross_entropy(logits.float(), labels).item()


def grad_norms(model: nn.Module, weights_only: bool = True) -> dict[str, float]:
    """L2 norm of each parameter's gradient (after a backward pass), by parameter name."""
    return {name: p.grad.detach().norm().item() for name, p in model.named_parameters()
            if p.grad is not None and (not weights_only or p.dim() > 1)}


def activation_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Norm of dLoss/dh for each hidden activation h of an :class:`~helpers.models.MLP`.

    Unlike weight gradients, these do not mix in the size of each layer's input, so they
    show directly how much the backward signal shrinks or grows from layer to layer.
    """
    logits, hidden = model.forward_with_hidden(x)
    for h in hidden:
        h.retain_grad()
    nn.functional.cross_entropy(logits, y).backward()
    return [h.grad.norm().item() for h in hidden]


@torch.no_grad()
def activation_stats(hidden: list[torch.Tensor], saturation: float = 0.99) -> dict[str, list[float]]:
    """Per-layer mean, std, fraction of exact zeros (dead ReLU outputs) and fraction saturated.

    A unit counts as saturated when ``|h| > saturation`` (tanh) — for sigmoid pass values
    mapped to [-1, 1] or read ``frac_zero`` and the mean instead.
    """
    check_float("saturation", saturation, 0.0, 1.0, lo_open=True)
    return {
        "mean": [h.mean().item() for h in hidden],
        "std": [h.std().item() for h in hidden],
        "frac_zero": [(h == 0).float().mean().item() for h in hidden],
        "frac_saturated": [(h.abs() > saturation).float().mean().item() for h in hidden],
    }
