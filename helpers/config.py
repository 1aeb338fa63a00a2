"""Scale, seed, device and paths: the few settings every notebook shares.

Environment variables (all optional):

* ``DL_SCALE``  ``quick`` (tests, CI) or ``full`` (self-study; the default).
* ``DL_SEED``   an integer that overrides the seed a notebook asks for.
* ``DL_DEVICE`` ``cpu``, ``cuda`` or ``mps``; unset picks CUDA, then MPS, then CPU.
* ``DL_THREADS`` CPU threads for torch, NumPy and scikit-learn (default 1: the curriculum's models are tiny, and one
  thread is faster for them and unaffected by a busy neighbour process; set more for big sweeps).
* ``DL_BUILD_DIR`` where claims ledgers and caches go (default: ``build/`` in the project).
"""
from __future__ import annotations

import os
import platform
import random
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
    warnings.warn(
        "torch was imported before helpers, so OMP_WAIT_POLICY=PASSIVE could not take effect; "
        "small training loops may run far slower when another process is busy. "
        "Import helpers first (or set OMP_WAIT_POLICY=PASSIVE in the environment).",
        RuntimeWarning, stacklevel=2,
    )
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers.validation import check_choice, check_int  # noqa: E402

SCALES = ("quick", "full")
DEVICES = ("cpu", "cuda", "mps")
DEFAULT_SEED = 0
T = TypeVar("T")


def scale() -> str:
    """The run's scale from ``DL_SCALE``: ``quick`` or ``full`` (unset means ``full``)."""
    value = os.environ.get("DL_SCALE", "full").strip().lower() or "full"
    return check_choice("DL_SCALE", value, SCALES)


def pick(quick: T, full: T) -> T:
    """Return ``quick`` at quick scale and ``full`` at full scale: one place for sizes."""
    return quick if scale() == "quick" else full


def device() -> torch.device:
    """The device to compute on: ``DL_DEVICE`` if set, else CUDA, then MPS, then CPU."""
    forced = os.environ.get("DL_DEVICE", "").strip().lower()
    if forced:
        check_choice("DL_DEVICE", forced, DEVICES)
        if forced == "cuda" and not torch.cuda.is_available():
            raise ValueError("DL_DEVICE=cuda but no CUDA device is available; use one of ['cpu']")
        if forced == "mps" and not torch.backends.mps.is_available():
            raise ValueError("DL_DEVICE=mps but MPS is not available; use one of ['cpu']")
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def threads() -> int:
    """CPU threads for torch from ``DL_THREADS`` (default 1, at most 256)."""
    value = os.environ.get("DL_THREADS", "").strip() or "1"
    try:
        return check_int("DL_THREADS", int(value), 1, 256)
    except ValueError:
        raise ValueError(f"DL_THREADS must be an integer in [1, 256], got {value!r}") from None


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (the previous count is restored after).

    For timing tiny operations steadily, and for small work that loses more to thread barriers than
    it gains from parallelism when another process is busy (measured on two shared cores: one
    temperature fit took 6 s on two threads and 0.15 s on one).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def limit_library_threads(count: int) -> None:
    """Limit the BLAS and OpenMP pools of NumPy and scikit-learn to ``count`` threads.

    Their spinning threads suffer the same contention as torch's: under load, a logistic regression took
    8-21 s on the multi-threaded maths library instead of 0.2-0.5 s on one thread.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=check_int("count", count, 1, 256))


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (all devices) with one integer and return it."""
    seed = check_int("seed", seed, 0, 2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def resolve_seed(seed: int | None = None) -> int:
    """``DL_SEED`` if set, else ``seed``, else the curriculum default (0)."""
    env = os.environ.get("DL_SEED", "").strip()
    if env:
        try:
            return check_int("DL_SEED", int(env), 0, 2**32 - 1)
        except ValueError:
            raise ValueError(f"DL_SEED must be an integer in [0, {2**32 - 1}], got {env!r}") from None
    return DEFAULT_SEED if seed is None else check_int("seed", seed, 0, 2**32 - 1)


def project_root() -> Path:
    """The folder that holds ``pyproject.toml`` (the helpers package's parent)."""
    return Path(__file__).resolve().parent.parent


def build_dir(*parts: str) -> Path:
    """A folder under the project's build directory (``DL_BUILD_DIR`` overrides), created."""
    base = Path(os.environ.get("DL_BUILD_DIR") or project_root() / "build")
    folder = base.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class RunConfig:
    """What ``setup`` decided: read it back in a notebook as ``cfg.device`` and so on."""

    notebook: str
    seed: int
    device: torch.device
    scale: str
    threads: int

    def __str__(self) -> str:
        return (f"{self.notebook}: torch {torch.__version__} | python {platform.python_version()} | "
                f"device {self.device} ({self.threads} CPU thread{'s' if self.threads > 1 else ''}) | "
                f"scale {self.scale} | seed {self.seed}")


_current: RunConfig | None = None


def current() -> RunConfig:
    """The configuration from the last ``setup`` call (``setup()`` with defaults if none)."""
    return _current if _current is not None else setup(verbose=False)


def setup(notebook: str = "scratch", seed: int | None = None, *, verbose: bool = True) -> RunConfig:
    """Seed everything once, pick device, scale and CPU threads, apply the plotting style, print one line.

    ``notebook`` names the claims ledger this run writes to; ``DL_SEED`` overrides ``seed``.
    """
    global _current
    if not notebook or not all(c.isalnum() or c in "_-" for c in notebook):
        raise ValueError(f"notebook must be a non-empty name of letters, digits, '_' or '-', got {notebook!r}")
    from helpers import plotting

    plotting.use_style()
    torch.set_num_threads(threads())
    limit_library_threads(threads())
    cfg = RunConfig(notebook=notebook, seed=seed_everything(resolve_seed(seed)),
                    device=device(), scale=scale(), threads=torch.get_num_threads())
    _current = cfg
    if verbose:
        print(cfg)
    return cfg
