"""Knowledge distillation (Hinton, Vinyals and Dean 2015): a small student learns from a teacher's soft targets.

The teacher's full output distribution says which wrong classes an input resembles ("dark knowledge"),
which one-hot labels never show. Both models' logits are softened by a temperature ``T`` and matched
with the KL divergence, mixed with the ordinary cross-entropy on the hard labels::

    loss = alpha * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T)) + (1 - alpha) * CE(z_student, y)

The soft term's gradient shrinks like ``1 / T^2``; the factor ``T^2`` keeps its weight whatever ``T``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from helpers.validation import check_float, check_int


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """The loss above for logits of shape (n, classes); ``labels=None`` is allowed only with ``alpha=1``."""
    temperature = check_float("temperature", temperature, 0.0, 100.0, lo_open=True)
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student_logits and teacher_logits must share a (n, classes) shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if labels is None and alpha < 1:
        raise ValueError("labels must be given when alpha < 1 (the hard-label term needs them)")
    soft = functional.kl_div(functional.log_softmax(student_logits / temperature, dim=-1),
                             functional.log_softmax(teacher_logits / temperature, dim=-1),
                             log_target=True, reduction="batchmean") * temperature ** 2
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * functional.cross_entropy(student_logits, labels)


def train_student(student: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                  temperature: float = 4.0, alpha: float = 0.9, epochs: int = 60, lr: float = 3e-3,
                  batch_size: int = 128, seed: int = 0) -> list[float]:
    """Train ``student`` with Adam on hard labels (``teacher_logits=None``) or by distillation; each epoch's
    mean loss. The teacher's logits travel with each mini-batch, which a labels-only training loop cannot do."""
    check_int("epochs", epochs, 1, 10_000)
    check_int("batch_size", batch_size, 1, 1_000_000)
    check_float("lr", lr, 0.0, 10.0, lo_open=True)
    if len(x) != len(y) or (teacher_logits is not None and len(teacher_logits) != len(x)):
        raise ValueError("x, y and teacher_logits must have the same number of rows")
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(x), generator=generator).to(x.device), 0.0
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            logits = student(x[rows])                                        # (batch, classes)
            loss = (functional.cross_entropy(logits, y[rows]) if teacher_logits is None else
                    distillation_loss(logits, teacher_logits[rows], y[rows], temperature, alpha))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(x))
    student.eval()
    return losses
