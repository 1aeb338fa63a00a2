"""Regularizers from scratch: inverted dropout, label smoothing, mixup, random shifts, and the fix for
dropout before BatchNorm.

Each is a few lines of tensor code. Dropout and label smoothing have PyTorch twins (``nn.Dropout``,
``F.cross_entropy(..., label_smoothing=...)``) that the tests compare against; mixup and shifts are
checked by hand. The training loop (``helpers.train.fit``) takes augmentations as a
``train_transform(x, y)`` and a smoothed loss as ``loss_fn``.
"""
from __future__ import annotations

import torch
from torch import nn

from helpers.validation import check_float, check_int


def inverted_dropout(x: torch.Tensor, p: float, training: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each entry with probability ``p`` and divide the survivors by ``1 - p`` (training only).

    With keep probability q = 1 - p and mask m ~ Bernoulli(q): E[x m / q] = x, so evaluation can use
    the network unchanged, but E[(x m / q)^2] = x^2 / q: the train-mode variance of a zero-mean unit is
    1/q times its eval-mode variance (what a BatchNorm layer after dropout sees; Li et al. 2019).
    """
    check_float("p", p, 0.0, 1.0, hi_open=True)
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    draws = torch.rand(x.shape, generator=generator).to(x.device)   # same shape as x, uniform in [0, 1)
    mask = (draws < keep).to(x.dtype)                                # 1 with probability q, else 0
    return x * mask / keep


def smoothed_targets(labels: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets softened to (1 - eps) on the true class plus eps / K on every class.

    The true class gets 1 - eps + eps / K, every other class eps / K; each row still sums to 1.
    """
    check_int("n_classes", n_classes, 2, 1_000_000)
    check_float("smoothing", smoothing, 0.0, 1.0)
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (n,), got {tuple(labels.shape)}")
    one_hot = nn.functional.one_hot(labels, n_classes).float()       # (n, K)
    return (1.0 - smoothing) * one_hot + smoothing / n_classes


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of softmax(logits) against :func:`smoothed_targets` (Szegedy et al. 2016).

    loss = -sum_k t_k log p_k with t = smoothed targets: (1 - eps) times the usual NLL plus eps times
    the mean of -log p_k over all K classes, which stops rewarding ever-larger logits. Its minimum
    puts probability 1 - eps + eps / K on the true class (:func:`smoothing_cap`).
    """
    if logits.dim() != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be (n, classes) and labels (n,), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    targets = smoothed_targets(labels, logits.shape[1], smoothing)  # (n, K)
    log_probs = logits.log_softmax(dim=-1)                           # (n, K)
    return -(targets * log_probs).sum(dim=-1).mean()


def smoothing_cap(smoothing: float, n_classes: int) -> float:
    """The top-class probability at the optimum of the smoothed loss: 1 - eps + eps / K."""
    check_float("smoothing", smoothing, 0.0, 1.0)
    check_int("n_classes", n_classes, 2, 1_000_000)
    return 1.0 - smoothing + smoothing / n_classes


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): blend each example and its target with a random partner's.

    lam ~ Beta(alpha, alpha), one per example; x' = lam x_i + (1 - lam) x_j and t' = lam t_i + (1 - lam) t_j,
    where j is a random permutation of the batch (drawn from torch's global generator). ``targets`` are
    class probabilities (n, K), for example one-hot rows; cross-entropy accepts the blends as soft targets.
    """
    check_float("alpha", alpha, 0.0, 100.0, lo_open=True)
    if targets.dim() != 2 or targets.shape[0] != x.shape[0]:
        raise ValueError(f"targets must have shape ({x.shape[0]}, classes), got {tuple(targets.shape)}")
    n = x.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((n,)).to(x.device)  # (n,) one blend weight each
    partner = torch.randperm(n).to(x.device)                                 # (n,) whom each one mixes with
    lam_x = lam.view(n, *([1] * (x.dim() - 1)))                      # broadcast over x's other dimensions
    mixed_x = lam_x * x + (1 - lam_x) * x[partner]
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]
    return mixed_x, mixed_targets


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Roll each row of ``x`` (n, length) circularly by its own random shift in [-max_shift, max_shift].

    Row i becomes torch.roll(x[i], s_i): out[i, t] = x[i, (t - s_i) mod length]. For signals whose
    pattern may sit anywhere (MNIST-1D), this is a label-preserving augmentation.
    """
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, length), got {tuple(x.shape)}")
    check_int("max_shift", max_shift, 0, x.shape[1] - 1)
    n, length = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator).to(x.device)  # (n, 1)
    positions = torch.arange(length, device=x.device).unsqueeze(0)                               # (1, length)
    return x.gather(1, (positions - shifts) % length)                                            # (n, length)


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> nn.Module:
    """Recompute every BatchNorm layer's running mean and variance on ``x`` with dropout switched off.

    A BatchNorm after dropout learns its running variance from the noisier train-mode activations; in
    eval mode the same units have a smaller variance, so the normalised outputs shrink (the variance
    shift). Passing the training inputs once more, BatchNorm in train mode but dropout in eval mode,
    gives statistics that match what evaluation sees. Returns ``model`` in eval mode.
    """
    check_int("batch_size", batch_size, 1, 10_000_000)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("model must contain at least one BatchNorm layer")
    model.eval()
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None          # a plain average over the batches (exact when x is one batch)
        norm.train()
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size])
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return model.eval()
