"""How data goes wrong: the data problems behind most training failures, each planted in a clean split.

Every function takes a :class:`~helpers.data.Splits` and returns a new one with exactly one fault;
the test split is never touched, so it stays an honest estimate to compare validation against.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from helpers.data import Splits
from helpers.validation import check_float, check_int


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))


def shuffle_labels(data: Splits, seed: int = 0) -> Splits:
    """Training labels permuted across examples: inputs and labels no longer belong together."""
    order = torch.randperm(len(data.y_train), generator=_generator(seed)).to(data.y_train.device)
    return replace(data, y_train=data.y_train[order])


def starve_class(data: Splits, label: int, keep: int = 3) -> Splits:
    """Only the first ``keep`` training examples of class ``label`` are kept (a class that is rarely collected)."""
    check_int("label", label, 0, data.n_classes - 1)
    check_int("keep", keep, 0, len(data.y_train))
    of_label = data.y_train == label
    kept = ~of_label | (of_label.cumsum(0) <= keep)
    return replace(data, x_train=data.x_train[kept], y_train=data.y_train[kept])


def leak_near_duplicates(data: Splits, fraction: float, noise: float = 0.05, seed: int = 0) -> Splits:
    """A ``fraction`` of validation rows replaced by training rows (with their labels) plus a little noise.

    This is what a split that ignores near-identical records does: the same customer, patient or
    photo on both sides. ``noise`` is in units of the (standardized) features.
    """
    check_float("fraction", fraction, 0.0, 1.0)
    check_float("noise", noise, 0.0, 10.0)
    generator = _generator(seed)
    n_leaked = round(fraction * len(data.y_val))
    rows = torch.randperm(len(data.y_val), generator=generator)[:n_leaked].to(data.y_val.device)
    sources = torch.randint(0, len(data.y_train), (n_leaked,), generator=generator).to(data.y_val.device)
    jitter = noise * torch.randn(data.x_train[sources].shape, generator=generator).to(data.x_val.device)
    x_val, y_val = data.x_val.clone(), data.y_val.clone()
    x_val[rows] = data.x_train[sources] + jitter
    y_val[rows] = data.y_train[sources]
    return replace(data, x_val=x_val, y_val=y_val)


def noisier_sensor(x: torch.Tensor, size: float, seed: int = 0) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``size``: a covariate shift (inputs change, the task stays)."""
    check_float("size", size, 0.0, 100.0)
    return x + size * torch.randn(x.shape, generator=_generator(seed)).to(x.device)


def shift_validation(data: Splits, size: float, seed: int = 0) -> Splits:
    """Validation inputs from a noisier sensor than training (and test) inputs."""
    return replace(data, x_val=noisier_sensor(data.x_val, size, seed))
