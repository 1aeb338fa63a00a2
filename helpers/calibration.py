"""Calibration: do predicted probabilities match observed frequencies?"""
from __future__ import annotations

import torch

from helpers.validation import check_int


def _check_probs(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (n, classes), got {tuple(probs.shape)}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("probs and labels must hold at least one example")
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError("probs must lie in [0, 1]")
    if not torch.allclose(probs.sum(-1), torch.ones(len(probs), dtype=probs.dtype, device=probs.device), atol=1e-4):
        raise ValueError("probs must sum to 1 over classes (pass softmax(logits), not logits)")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be in [0, {probs.shape[1] - 1}]")


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017) with ``n_bins`` equal-width bins ((m-1)/M, m/M].

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|.
    """
    _check_probs(probs, labels)
    check_int("n_bins", n_bins, 1, 1000)
    confidence, prediction = probs.max(-1)
    correct = (prediction == labels).double()
    bins = torch.clamp(torch.ceil(confidence.double() * n_bins).long() - 1, 0, n_bins - 1)
    count = torch.bincount(bins, minlength=n_bins).double()
    conf_sum = torch.bincount(bins, weights=confidence.double(), minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return ((acc_sum - conf_sum).abs().sum() / len(labels)).item()
