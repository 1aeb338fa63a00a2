"""Feedback for "Your turn" exercises.

A checker runs the learner's code against an independent reference and prints one of three verdicts:
not attempted yet, not quite (with a hint), or correct. It returns ``True`` only when correct and never
raises on a wrong answer, so an exercise left half-done never stops the rest of the notebook.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOT_ATTEMPTED = object()


def attempt(fn: Callable[..., Any] | None, *args: Any, what: str) -> Any:
    """Call the learner's ``fn(*args)``; return ``NOT_ATTEMPTED`` for an untouched stub.

    A stub is ``None``, a function that raises ``NotImplementedError`` or one that returns ``None``.
    Any other exception is reported as a wrong answer and also returns ``NOT_ATTEMPTED``.
    """
    if fn is None:
        return not_attempted(f"{what} is still None") or NOT_ATTEMPTED
    try:
        result = fn(*args)
    except NotImplementedError:
        return not_attempted(f"fill in {what} and run this cell again") or NOT_ATTEMPTED
    except Exception as error:  # noqa: BLE001 - a learner's bug is feedback, not a crash
        return wrong(f"{what} raised {type(error).__name__}: {error}") or NOT_ATTEMPTED
    if result is None:
        return not_attempted(f"{what} returned None") or NOT_ATTEMPTED
    return result


def not_attempted(what: str) -> bool:
    """Print that the exercise is not attempted yet; return False."""
    print(f"Not attempted yet: {what}.")
    return False


def wrong(message: str, hint: str = "") -> bool:
    """Print why the answer is not right yet (and a hint); return False."""
    print(f"Not quite: {message}" + (f"\nHint: {hint}" if hint else ""))
    return False


def correct(message: str) -> bool:
    """Print the confirmation; return True."""
    print(f"Correct: {message}")
    return True
