"""Pruning from scratch: zero the smallest weights (unstructured) or remove whole neurons (structured).

*Global magnitude pruning* ranks every weight of every linear layer together by ``|w|`` and zeros the
smallest fraction (the sparsity). The zeros still sit in dense matrices, so nothing runs faster unless
a sparse kernel skips them. *Structured pruning* removes whole hidden neurons: a row of one layer and
the matching column of the next, leaving smaller dense matrices that any hardware runs faster.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from helpers.validation import check_float


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """Every ``nn.Linear`` of ``model``, in order."""
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


def global_magnitude_prune(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy of ``model`` with the ``sparsity`` fraction of smallest-magnitude linear weights zeroed.

    ``torch.nn.utils.prune`` keeps a 0/1 mask beside each weight (``weight = weight_orig * weight_mask``),
    so fine-tuning cannot revive a pruned weight; :func:`make_pruning_permanent` folds the masks in.
    """
    check_float("sparsity", sparsity, 0.0, 1.0, hi_open=True)
    model = copy.deepcopy(model)
    weights = [(layer, "weight") for layer in linear_layers(model)]
    if not weights:
        raise ValueError("model must contain at least one nn.Linear")
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return model


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into plain weights (in place) and return ``model``."""
    for layer in linear_layers(model):
        if prune.is_pruned(layer):
            prune.remove(layer, "weight")
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all linear weights."""
    weights = [layer.weight.detach() for layer in linear_layers(model)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def linear_stack(model: nn.Module) -> nn.Sequential:
    """The layers of a feed-forward net as one flat ``nn.Sequential`` copy, in the order they run.

    Accepts an ``nn.Sequential`` of linear layers and element-wise modules, or a
    :class:`helpers.models.MLP` without normalization or residual connections (dropout is kept: it is
    the identity in eval mode).
    """
    if isinstance(model, nn.Sequential):
        return copy.deepcopy(model)
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "blocks") or config.get("norm") or config.get("residual"):
        raise ValueError("model must be an nn.Sequential or a helpers.models.MLP without norm or residual blocks")
    layers: list[nn.Module] = []
    for block in model.blocks:
        layers += [block.linear, block.act, block.drop]
    return copy.deepcopy(nn.Sequential(*layers, model.head)).train(model.training)


def prune_neurons(model: nn.Module, keep_fraction: float) -> nn.Sequential:
    """Structured pruning: keep each hidden layer's ``keep_fraction`` of neurons with the largest incoming
    weight norm, and rebuild *smaller* linear layers (the kept rows here, the same columns in the next layer).
    """
    keep_fraction = check_float("keep_fraction", keep_fraction, 0.0, 1.0, lo_open=True)
    layers = list(make_pruning_permanent(linear_stack(model)))
    positions = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)]
    if len(positions) < 2:
        raise ValueError("model must have at least two nn.Linear layers (one hidden layer) to remove neurons")
    with torch.no_grad():
        for here, after in zip(positions[:-1], positions[1:]):
            layer, following = layers[here], layers[after]
            n_keep = max(1, round(layer.out_features * keep_fraction))
            kept = layer.weight.norm(dim=1).topk(n_keep).indices.sort().values        # (n_keep,)
            smaller = nn.Linear(layer.in_features, n_keep, bias=layer.bias is not None,
                                device=layer.weight.device, dtype=layer.weight.dtype)
            smaller.weight.copy_(layer.weight[kept])                                  # (n_keep, in)
            if layer.bias is not None:
                smaller.bias.copy_(layer.bias[kept])
            narrower = nn.Linear(n_keep, following.out_features, bias=following.bias is not None,
                                 device=following.weight.device, dtype=following.weight.dtype)
            narrower.weight.copy_(following.weight[:, kept])                          # (out, n_keep)
            if following.bias is not None:
                narrower.bias.copy_(following.bias)
            layers[here], layers[after] = smaller, narrower
    return nn.Sequential(*layers).train(model.training)


def matched_keep_fraction(model: nn.Module, density: float) -> float:
    """The neuron keep-fraction at which :func:`prune_neurons` leaves ``density`` of the linear weights,
    so structured and unstructured pruning can be compared at the same number of weights."""
    density = check_float("density", density, 0.0, 1.0, lo_open=True)
    shapes = [(layer.in_features, layer.out_features) for layer in linear_layers(model)]
    total = sum(fan_in * fan_out for fan_in, fan_out in shapes)

    def kept(fraction: float) -> float:
        widths = [shapes[0][0]] + [max(1, round(fan_out * fraction)) for _, fan_out in shapes[:-1]] + [shapes[-1][1]]
        return sum(fan_in * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:])) / total

    low, high = 0.0, 1.0
    for _ in range(40):  # bisection: kept() rises with the fraction
        middle = (low + high) / 2
        low, high = (middle, high) if kept(middle) < density else (low, middle)
    return high


class SparseLinear(nn.Module):
    """A linear layer whose weight is stored as a ``torch.sparse`` CSR matrix: zeros are neither stored
    nor multiplied."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch labels CSR support "beta"; the product used here is stable
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()                       # (out, in), CSR
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (self.weight @ x.t()).t()                                                # (B, out)
        return out if self.bias is None else out + self.bias


def to_sparse(model: nn.Module) -> nn.Sequential:
    """A copy of a feed-forward net whose linear layers store their weights sparse (eval mode)."""
    layers = make_pruning_permanent(linear_stack(model))
    return nn.Sequential(*[SparseLinear(m) if isinstance(m, nn.Linear) else m for m in layers]).eval()
