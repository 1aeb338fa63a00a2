"""Batch normalization written out (Ioffe & Szegedy 2015): statistics over the *batch*, per feature.

For a mini-batch x of shape (B, features), each feature j is standardised with the mean and variance of
column j, then scaled and shifted by learned parameters:

    y = (x - mean_batch) / sqrt(var_batch + eps) * weight + bias

So an example's output depends on the other examples in its batch. Training mode uses the batch's
statistics and updates running averages; eval mode uses those running averages instead, so each example is
processed on its own. Layer normalization (Ba et al. 2016) takes the statistics over the features of each
example instead: no batch dependence and no running averages (it is the exercise in notebook 04).
Matches ``torch.nn.functional.batch_norm``.
"""
from __future__ import annotations

import torch

from helpers.validation import check_float


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """x (B, features) -> (B, features); in training mode ``running_mean``/``running_var`` are updated in place."""
    if x.dim() != 2:
        raise ValueError(f"x must have shape (batch, features), got {tuple(x.shape)}")
    if running_mean.shape != (x.shape[1],) or running_var.shape != (x.shape[1],):
        raise ValueError(f"running_mean and running_var must have shape ({x.shape[1]},), got "
                         f"{tuple(running_mean.shape)} and {tuple(running_var.shape)}")
    if training and x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 examples in training mode (a variance needs two), got {x.shape[0]}")
    check_float("momentum", momentum, 0.0, 1.0)
    check_float("eps", eps, 0.0, 1.0, lo_open=True)
    if training:
        mean = x.mean(dim=0)                                              # (features,): over the batch
        var = x.var(dim=0, unbiased=False)                                # (features,): the biased variance
        with torch.no_grad():                                             # running averages for eval mode
            unbiased = var * x.shape[0] / (x.shape[0] - 1)
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    else:
        mean, var = running_mean, running_var                             # fixed: each example on its own
    y = (x - mean) / torch.sqrt(var + eps)                                # (B, features)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
