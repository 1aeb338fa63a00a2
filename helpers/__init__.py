"""dl-interview-lab helpers: the small, tested code that the notebooks import.

Importing the package only sets ``OMP_WAIT_POLICY=PASSIVE`` (before torch is
loaded) and makes the submodules available lazily, so ``import helpers`` stays
cheap; ``from helpers import setup`` loads torch.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_SHORTCUTS = {"setup": "config", "claim": "claims", "scale": "config", "pick": "config"}


def __getattr__(name: str) -> Any:
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"helpers.{_SHORTCUTS[name]}"), name)
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"helpers.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"helpers.{name}":
                raise
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
