"""Argument checks shared by every helper: each raises ``ValueError`` naming the
parameter and the allowed range, so a learner sees what to change."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """Return ``value`` if it is an integer in ``[lo, hi]``; else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return int(value)


def check_float(name: str, value: Any, lo: float, hi: float, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as float if it is finite and in the range; else raise ``ValueError``."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    allowed = f"{left}{lo}, {hi}{right}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}") from None
    if isinstance(value, bool) or math.isnan(number):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    too_low = number <= lo if lo_open else number < lo
    too_high = number >= hi if hi_open else number > hi
    if too_low or too_high:
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    return number


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; else raise ``ValueError`` listing them."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_shape(name: str, tensor: Any, shape: Sequence[int | None]) -> Any:
    """Check a tensor or array's shape; ``None`` in ``shape`` matches any size."""
    actual = tuple(getattr(tensor, "shape", ()))
    ok = len(actual) == len(shape) and all(s is None or s == a for s, a in zip(shape, actual))
    if not ok:
        wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {actual}")
    return tensor
