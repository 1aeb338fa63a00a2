"""Hunting a NaN: catch the first step whose gradients stop being finite, then name the operation that made them.

A NaN usually appears in the *backward* pass first: the loss is still a finite number, the gradients
are not, the optimizer writes NaN into every weight, and only the next forward pass shows a NaN loss.
By then every layer outputs NaN, so forward hooks that look for "the first layer with a NaN" blame
the first layer, which did nothing wrong. The reliable recipe is a finiteness guard right after
``backward()`` and, when it trips, a replay of that one step under ``torch.autograd.detect_anomaly``,
which names the backward function that produced the NaN.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import torch
from torch import nn


def naive_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy written by hand as ``-log(softmax(z))[y]``: it works until a probability underflows to 0.

    ``log(0) = -inf`` in the forward pass is harmless while that entry is not the label, but its backward
    is ``0 / 0 = nan``. ``torch.nn.functional.cross_entropy`` computes ``log_softmax`` directly and stays finite.
    """
    probabilities = torch.softmax(logits, dim=-1)                       # (N, C), may underflow to 0
    return -torch.log(probabilities).gather(1, y[:, None]).mean()


def gradients_finite(model: nn.Module) -> bool:
    """The guard: True if every gradient of the model is finite (one synchronisation, whatever the model's size)."""
    norms = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return bool(torch.isfinite(torch.stack(norms)).all()) if norms else True


def non_finite_gradients(model: nn.Module) -> list[str]:
    """Names of the parameters whose gradient holds a nan or an inf."""
    return [name for name, p in model.named_parameters()
            if p.grad is not None and not torch.isfinite(p.grad).all()]


class FirstNonFiniteOutput:
    """Forward hooks on every leaf module that remember the first one (in call order) to output a nan or inf.

    Use as a context manager around a forward pass; ``culprit`` is the module's name, or None.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model, self.culprit, self.handles = model, None, []

    def _hook(self, name: str) -> Callable:
        def check(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if self.culprit is None and not torch.isfinite(output).all():
                self.culprit = name
        return check

    def __enter__(self) -> FirstNonFiniteOutput:
        self.culprit = None
        self.handles = [module.register_forward_hook(self._hook(name))
                        for name, module in self.model.named_modules() if not list(module.children())]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self.handles:
            handle.remove()


def anomaly_origin(step: Callable[[], None]) -> str | None:
    """Replay ``step`` (a forward and backward pass) under anomaly detection; return the name of the
    backward function that first returned nan (e.g. ``LogBackward0``), or None if none did."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                  # anomaly mode warns about itself
        with torch.autograd.detect_anomaly(check_nan=True):
            try:
                step()
            except RuntimeError as error:
                match = re.search(r"Function '(\w+)' returned nan values", str(error))
                if match is None:
                    raise
                return match.group(1)
    return None
