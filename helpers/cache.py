"""A small disk cache for results that are slow to recompute (trained weights, sweeps).

Entries live only under ``build/cache/`` (``DL_BUILD_DIR`` moves it); each is written to a
temporary file and renamed into place, so an interrupted run never leaves half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _path(name: str, key: dict[str, Any]) -> Path:
    from helpers import config

    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"name must be a non-empty name of letters, digits, '_' or '-', got {name!r}")
    blob = json.dumps({"key": key, "torch": torch.__version__}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return config.build_dir("cache") / f"{name}-{digest}.pt"


def cached(name: str, compute: Callable[[], T], **key: Any) -> T:
    """Return ``compute()``, stored on disk under ``name`` and ``key`` and reused next time.

    ``key`` must name everything the result depends on (scale, seed, sizes, ...); set
    ``DL_CACHE=0`` to always recompute (tests do, so a stale entry can never hide a bug).
    """
    path = _path(name, key)
    use_cache = os.environ.get("DL_CACHE", "1") != "0"
    if use_cache and path.exists():
        return torch.load(path, weights_only=False)
    value = compute()
    if use_cache:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        torch.save(value, tmp)
        os.replace(tmp, path)
    return value
