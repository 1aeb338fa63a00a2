"""Data sets that need no download: scikit-learn's digits, MNIST-1D generated offline,
and small synthetic problems.  Every split is stratified; standardisation is fitted on
the training split only; tensors land on the chosen device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from helpers.validation import check_float, check_int


@dataclass(frozen=True)
class Splits:
    """Train, validation and test tensors of one classification data set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def n_features(self) -> int:
        """Number of input features per example (the last dimension)."""
        return int(self.x_train.shape[-1])

    def to(self, device: torch.device | str) -> Splits:
        """The same splits on ``device``."""
        return replace(self, **{k: getattr(self, k).to(device) for k in
                                ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")})

    def sizes(self) -> dict[str, int]:
        """Number of examples in each split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def __repr__(self) -> str:
        s = self.sizes()
        return (f"Splits({self.name!r}: train {s['train']}, val {s['val']}, test {s['test']}, "
                f"{self.n_features} features, {self.n_classes} classes, on {self.x_train.device})")


def stratified_split(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split indices of ``y`` into parts with the given fractions, each class in proportion."""
    if not fractions or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        for i, chunk in enumerate(np.split(idx, bounds[:-1])):
            parts[i].extend(chunk.tolist())
    return [rng.permutation(np.array(p, dtype=np.int64)) for p in parts]


def _finish(name: str, x: dict[str, np.ndarray], y: dict[str, np.ndarray], n_classes: int,
            standardize: bool, device: torch.device | str | None) -> Splits:
    if standardize:
        mean = x["train"].mean(axis=0)
        std = x["train"].std(axis=0)
        std = np.where(std < 1e-6, 1.0, std)  # a feature constant in training (a blank pixel) is only centred
        x = {k: (v - mean) / std for k, v in x.items()}
    if device is None:
        from helpers import config
        device = config.device()
    as_x = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    as_y = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)  # noqa: E731
    return Splits(name, as_x(x["train"]), as_y(y["train"]), as_x(x["val"]), as_y(y["val"]),
                  as_x(x["test"]), as_y(y["test"]), n_classes)


def _subsample(idx: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Exactly ``n`` of ``idx`` (all if ``n`` is None), each class in proportion to its share.

    Each class's members are shuffled and given evenly spaced ranks in [0, 1); the ``n``
    lowest ranks are kept, so every class contributes in proportion, give or take one.
    """
    if n is None or n >= len(idx):
        return idx
    rng = np.random.default_rng(seed)
    rank = np.empty(len(idx))
    for label in np.unique(y[idx]):
        members = rng.permutation(np.flatnonzero(y[idx] == label))
        rank[members] = (np.arange(len(members)) + rng.uniform(0, 1)) / len(members)
    return idx[np.sort(np.argsort(rank, kind="stable")[:n])]


def digits(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
           standardize: bool = True, device: torch.device | str | None = None) -> Splits:
    """scikit-learn's 8x8 handwritten digits (1797 x 64, 10 classes), split and standardised."""
    from sklearn.datasets import load_digits

    check_float("val_fraction", val_fraction, 0.0, 0.5, lo_open=True)
    check_float("test_fraction", test_fraction, 0.0, 0.5, lo_open=True)
    check_int("seed", seed, 0, 2**32 - 1)
    data = load_digits()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    train, val, test = stratified_split(y, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed)
    return _finish("digits", {"train": x[train], "val": x[val], "test": x[test]},
                   {"train": y[train], "val": y[val], "test": y[test]}, 10, standardize, device)


@lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D (Greydanus 2020) offline; NumPy's global generator is restored after."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return (data["x"].astype(np.float32), data["y"].astype(np.int64),
            data["x_test"].astype(np.float32), data["y_test"].astype(np.int64))


def mnist1d(n_train: int | None = None, val_fraction: float = 0.2, seed: int = 0,
            num_samples: int = 5000, standardize: bool = True,
            device: torch.device | str | None = None) -> Splits:
    """MNIST-1D: 10 classes of length-40 signals, generated in about a second, never downloaded.

    The generator's own 80/20 train/test split is kept (test is untouched); ``val_fraction``
    of the training part becomes validation (stratified), and ``n_train`` optionally keeps a
    stratified subset of what remains for training (small training sets overfit).
    """
    check_int("num_samples", num_samples, 500, 50_000)
    check_float("val_fraction", val_fraction, 0.0, 0.5, lo_open=True)
    check_int("seed", seed, 0, 2**32 - 1)
    x, y, x_test, y_test = _mnist1d_arrays(num_samples)
    train, val = stratified_split(y, (1 - val_fraction, val_fraction), seed)
    if n_train is not None:
        check_int("n_train", n_train, 20, len(train))
        train = _subsample(train, y, n_train, seed)
    return _finish("mnist1d", {"train": x[train], "val": x[val], "test": x_test},
                   {"train": y[train], "val": y[val], "test": y_test}, 10, standardize, device)


def _split_arrays(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
                  device: torch.device | str | None, standardize: bool = False) -> Splits:
    train, val, test = stratified_split(y, (0.6, 0.2, 0.2), seed)
    return _finish(name, {"train": x[train], "val": x[val], "test": x[test]},
                   {"train": y[train], "val": y[val], "test": y[test]}, n_classes, standardize, device)


def spirals(n: int = 600, noise: float = 0.2, turns: float = 1.5, seed: int = 0,
            device: torch.device | str | None = None) -> Splits:
    """Two interleaved spirals in 2-D (a classic non-linear problem), split 60/20/20."""
    check_int("n", n, 20, 200_000)
    check_float("noise", noise, 0.0, 2.0)
    check_float("turns", turns, 0.25, 5.0)
    rng = np.random.default_rng(seed)
    per_class = n // 2
    t = np.sqrt(rng.uniform(0, 1, per_class)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, noise / 4, (2 * per_class, 2))
    y = np.concatenate([np.zeros(per_class), np.ones(per_class)]).astype(np.int64)
    return _split_arrays("spirals", x.astype(np.float32), y, 2, seed, device)


def moons(n: int = 600, noise: float = 0.2, seed: int = 0,
          device: torch.device | str | None = None) -> Splits:
    """scikit-learn's two moons in 2-D, split 60/20/20."""
    from sklearn.datasets import make_moons

    check_int("n", n, 20, 200_000)
    check_float("noise", noise, 0.0, 2.0)
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return _split_arrays("moons", x.astype(np.float32), y.astype(np.int64), 2, seed, device)


def ill_conditioned_quadratic(kappa: float = 100.0, dim: int = 2, seed: int | None = None,
                              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A symmetric positive-definite matrix ``A`` with eigenvalues from 1 to ``kappa``.

    The loss is ``f(w) = 0.5 * w^T A w`` with its minimum at zero.  With ``seed=None`` the
    matrix is diagonal (axes aligned, as in contour plots); with a seed it is rotated randomly.
    """
    check_float("kappa", kappa, 1.0, 1e8)
    check_int("dim", dim, 2, 4096)
    eigenvalues = torch.logspace(0, math.log10(kappa), dim, dtype=dtype)
    if seed is None:
        return torch.diag(eigenvalues)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=dtype))
    return q @ torch.diag(eigenvalues) @ q.T


def remember_first(n: int = 1000, length: int = 50, seed: int = 0,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A long-range toy sequence task: the label is the sign of the *first* of ``length`` noise inputs.

    Returns ``x`` of shape ``(n, length, 1)`` and binary labels ``y`` of shape ``(n,)``; a
    recurrent net must carry information across all ``length`` steps to solve it.
    """
    check_int("n", n, 2, 1_000_000)
    check_int("length", length, 1, 10_000)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    x = torch.randn(n, length, 1, generator=gen)
    y = (x[:, 0, 0] > 0).long()
    if device is None:
        from helpers import config
        device = config.device()
    return x.to(device), y.to(device)
