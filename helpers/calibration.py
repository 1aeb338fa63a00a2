"""Calibration: do predicted probabilities match observed frequencies?

Metrics (top-label, as in Guo et al. 2017): expected and maximum calibration error with
equal-width or equal-mass bins, negative log-likelihood and the Brier score; the
reliability diagram; temperature scaling; selective prediction (abstain below a
confidence threshold); a bootstrap interval for ECE; two explorers; exercise checkers.

How bins treat their edges (decided once, used everywhere)
-----------------------------------------------------------
Equal-width bin ``m`` of ``M`` holds confidences in ``((m-1)/M, m/M]`` (the first bin
also holds 0).  The edges ``m/M`` are rounded to the *dtype of the probabilities*
before comparing, so a float32 confidence 0.6 (stored as 0.6000000238) equals the
float32 edge 0.6 and lands in the bin that ends at 0.6, as it would on paper.  All
sums and means are then accumulated in float64.  Equal-mass bins sort the
confidences (stable sort) and cut them into ``M`` groups whose sizes differ by at most one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers.train import Callback, History
from helpers.validation import check_choice, check_float, check_int
from helpers.config import one_thread as _one_thread

SCHEMES = ("equal-width", "equal-mass")
MAX_EXAMPLES = 10_000_000
MAX_BOOTSTRAP = 10_000
T_MIN, T_MAX = 1e-2, 1e2


# ----------------------------------------------------------------------------- validation


def _check_probs(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(probs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ValueError("probs and labels must be torch tensors")
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (n, classes), got {tuple(probs.shape)}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("probs and labels must hold at least one example")
    if len(labels) > MAX_EXAMPLES:
        raise ValueError(f"probs must hold at most {MAX_EXAMPLES} examples, got {len(labels)}")
    if not probs.is_floating_point():
        raise ValueError(f"probs must be floating point, got {probs.dtype}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")
    if not torch.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probs must lie in [0, 1]")
    if not torch.allclose(probs.sum(-1), torch.ones(len(probs), dtype=probs.dtype, device=probs.device), atol=1e-4):
        raise ValueError("probs must sum to 1 over classes (pass softmax(logits), not logits)")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be in [0, {probs.shape[1] - 1}]")


def _check_logits(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ValueError("logits and labels must be torch tensors")
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, classes >= 2), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],) or len(labels) == 0:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) with n >= 1, got {tuple(labels.shape)}")
    if len(labels) > MAX_EXAMPLES:
        raise ValueError(f"logits must hold at most {MAX_EXAMPLES} examples, got {len(labels)}")
    if not logits.is_floating_point() or not torch.isfinite(logits).all():
        raise ValueError("logits must be finite floating-point numbers")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be in [0, {logits.shape[1] - 1}]")


# ----------------------------------------------------------------------------- binning
@dataclass(frozen=True)
class Bins:
    """Per-bin statistics of top-label confidence: what ECE, MCE and the diagram read."""

    lower: np.ndarray        # left edge of each bin
    upper: np.ndarray        # right edge of each bin
    count: np.ndarray        # examples in each bin
    confidence: np.ndarray   # mean confidence in each bin (nan if empty)
    accuracy: np.ndarray     # fraction correct in each bin (nan if empty)
    n: int                   # total number of examples

    @property
    def gap(self) -> np.ndarray:
        """|accuracy - confidence| per bin (nan where empty)."""
        return np.abs(self.accuracy - self.confidence)


def top_label(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-class confidence (probs' dtype, on the CPU) and whether the top class is right (float64 0/1)."""
    _check_probs(probs, labels)
    confidence, prediction = probs.detach().cpu().max(-1)
    labels = labels.cpu()
    return confidence, (prediction == labels).double()


def bin_indices(confidence: torch.Tensor, n_bins: int = 15, scheme: str = "equal-width") -> torch.Tensor:
    """Bin index (0..n_bins-1) of each confidence; see the module docstring for the edge rule."""
    check_int("n_bins", n_bins, 1, 1000)
    check_choice("scheme", scheme, SCHEMES)
    if scheme == "equal-width":
        edges = (torch.arange(n_bins + 1, dtype=torch.float64) / n_bins).to(confidence.dtype).to(confidence.device)
        return (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, n_bins - 1)
    order = torch.argsort(confidence, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order), device=order.device)
    return (ranks * n_bins) // len(order)


def calibration_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                     scheme: str = "equal-width") -> Bins:
    """Count, mean confidence and accuracy in each bin of top-label confidence."""
    confidence, correct = top_label(probs, labels)
    return _bins_from(confidence, correct, n_bins, scheme)


def _bins_from(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int, scheme: str) -> Bins:
    index = bin_indices(confidence, n_bins, scheme)
    count = torch.bincount(index, minlength=n_bins).double()
    conf_sum = torch.bincount(index, weights=confidence.double(), minlength=n_bins)
    acc_sum = torch.bincount(index, weights=correct, minlength=n_bins)
    safe = count.clamp_min(1)
    empty = (count == 0).numpy()
    mean_conf = (conf_sum / safe).numpy()
    accuracy = (acc_sum / safe).numpy()
    mean_conf[empty], accuracy[empty] = np.nan, np.nan
    if scheme == "equal-width":
        lower, upper = np.arange(n_bins) / n_bins, np.arange(1, n_bins + 1) / n_bins
    else:
        c, idx = confidence.double().numpy(), index.numpy()
        lower = np.array([c[idx == b].min() if not empty[b] else np.nan for b in range(n_bins)])
        upper = np.array([c[idx == b].max() if not empty[b] else np.nan for b in range(n_bins)])
    return Bins(lower, upper, count.numpy(), mean_conf, accuracy, len(confidence))


def _ece_from(bins: Bins) -> float:
    return float(np.nansum(bins.count * bins.gap) / bins.n)


# ----------------------------------------------------------------------------- metrics
def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017) with ``n_bins`` equal-width bins ((m-1)/M, m/M].

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|.
    """
    return calibration_error(probs, labels, n_bins, "equal-width")


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                      scheme: str = "equal-width") -> float:
    """ECE with either ``equal-width`` bins or ``equal-mass`` (adaptive) bins of equal counts."""
    return _ece_from(calibration_bins(probs, labels, n_bins, scheme))


def adaptive_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Equal-mass ECE: every bin holds (nearly) the same number of examples (Nixon et al. 2019)."""
    return calibration_error(probs, labels, n_bins, "equal-mass")


def maximum_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                              scheme: str = "equal-width") -> float:
    """MCE: the largest |accuracy - confidence| over non-empty bins (the worst case)."""
    return float(np.nanmax(calibration_bins(probs, labels, n_bins, scheme).gap))


def negative_log_likelihood(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean -log p(true class), in nats; probabilities are clipped at ``eps`` to stay finite."""
    _check_probs(probs, labels)
    check_float("eps", eps, 0.0, 1e-3, lo_open=True)
    probs, labels = probs.detach().cpu(), labels.cpu()
    p_true = probs.double().gather(1, labels.view(-1, 1)).squeeze(1)
    return float(-p_true.clamp_min(eps).log().mean())


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score (Brier 1950): mean over examples of sum_k (p_k - 1[y = k])^2, in [0, 2]."""
    _check_probs(probs, labels)
    probs, labels = probs.detach().cpu(), labels.cpu()
    onehot = nn.functional.one_hot(labels, probs.shape[1]).double()
    return float(((probs.double() - onehot) ** 2).sum(-1).mean())


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, mean confidence, ECE, equal-mass ECE, MCE, NLL and Brier of softmax(logits)."""
    _check_logits(logits, labels)
    probs = logits.detach().cpu().double().softmax(-1)
    labels = labels.cpu()
    confidence, correct = top_label(probs, labels)
    return {"accuracy": float(correct.mean()), "confidence": float(confidence.mean()),
            "ece": expected_calibration_error(probs, labels, n_bins),
            "ece_equal_mass": adaptive_calibration_error(probs, labels, n_bins),
            "mce": maximum_calibration_error(probs, labels, n_bins),
            "nll": negative_log_likelihood(probs, labels), "brier": brier_score(probs, labels)}


# ----------------------------------------------------------------------------- temperature scaling
def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits divided by ``temperature`` (T > 1 softens, T < 1 sharpens; argmax never changes)."""
    check_float("temperature", temperature, T_MIN, T_MAX)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a tensor of shape (n, classes), got {getattr(logits, 'shape', logits)}")
    return logits / temperature


def temperature_nll(logits: torch.Tensor, labels: torch.Tensor, temperatures: Sequence[float]) -> np.ndarray:
    """NLL of softmax(logits / T) for each T (the curve temperature scaling minimises)."""
    _check_logits(logits, labels)
    ts = torch.as_tensor([check_float("temperature", t, T_MIN, T_MAX) for t in temperatures], dtype=torch.float64)
    if len(ts) == 0 or len(ts) > 10_000:
        raise ValueError(f"temperatures must hold 1 to 10000 values, got {len(ts)}")
    z = logits.detach().cpu().double()
    y = labels.cpu()
    return np.array([nn.functional.cross_entropy(z / t, y).item() for t in ts])


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The single temperature T that minimises NLL of softmax(logits / T) (Guo et al. 2017).

    Fit it on held-out (validation) logits, never on test.  We optimise log T with L-BFGS,
    so T stays positive without constraints; the result is clipped to [0.01, 100].
    """
    _check_logits(logits, labels)
    check_int("max_iter", max_iter, 1, 10_000)
    z, y = logits.detach().cpu().double(), labels.cpu()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    with _one_thread():
        opt.step(closure)
    return float(log_t.detach().exp().clamp(T_MIN, T_MAX))


# ----------------------------------------------------------------------------- decisions and noise
def coverage_accuracy(probs: torch.Tensor, labels: torch.Tensor,
                      thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """Act only when confidence >= t: coverage (fraction acted on) and accuracy on those, per t.

    Accuracy is nan where nothing is covered.
    """
    confidence, correct = top_label(probs, labels)
    ts = np.array([check_float("threshold", t, 0.0, 1.0) for t in thresholds], dtype=float)
    if len(ts) == 0 or len(ts) > 10_000:
        raise ValueError(f"thresholds must hold 1 to 10000 values, got {len(ts)}")
    c, ok = confidence.double().cpu().numpy(), correct.cpu().numpy()
    keep = c[None, :] >= ts[:, None]
    covered = keep.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(covered > 0, (keep * ok[None, :]).sum(1) / covered, np.nan)
    return {"threshold": ts, "coverage": covered / len(c), "accuracy": accuracy}


def bootstrap_ece(probs: torch.Tensor, labels: torch.Tensor, n_boot: int = 1000, n_bins: int = 15,
                  level: float = 0.9, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap interval for ECE: resample the test set with replacement ``n_boot`` times."""
    _check_probs(probs, labels)
    check_int("n_boot", n_boot, 10, MAX_BOOTSTRAP)
    check_float("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    check_int("seed", seed, 0, 2**32 - 1)
    if len(labels) * n_boot > 50_000_000:
        raise ValueError(f"n_boot must be at most {50_000_000 // len(labels)} for {len(labels)} examples")
    confidence, correct = top_label(probs, labels)
    index = bin_indices(confidence, n_bins, "equal-width").cpu()
    conf, ok = confidence.double().cpu(), correct.cpu()
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    draws = torch.randint(0, n, (n_boot, n), generator=gen)
    flat = (torch.arange(n_boot).unsqueeze(1) * n_bins + index[draws]).flatten()
    size = n_boot * n_bins
    gap = (torch.bincount(flat, weights=(ok[draws] - conf[draws]).flatten(), minlength=size)
           .view(n_boot, n_bins))
    values = (gap.abs().sum(1) / n).numpy()
    alpha = (1 - level) / 2
    return {"ece": expected_calibration_error(probs, labels, n_bins),
            "low": float(np.quantile(values, alpha)), "high": float(np.quantile(values, 1 - alpha)),
            "std": float(values.std())}


def synthetic_calibrated(n: int, n_classes: int = 10, sharpness: float = 2.0,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A perfectly calibrated predictor by construction: labels are *drawn* from its probabilities.

    Logits are N(0, sharpness^2); each label is sampled from softmax(logits).  The true
    calibration error is zero, so any ECE measured on it is estimation noise.
    """
    check_int("n", n, 1, 2_000_000)
    check_int("n_classes", n_classes, 2, 1000)
    check_float("sharpness", sharpness, 0.0, 20.0)
    check_int("seed", seed, 0, 2**32 - 1)
    gen = torch.Generator().manual_seed(seed)
    probs = (torch.randn(n, n_classes, generator=gen, dtype=torch.float64) * sharpness).softmax(-1)
    labels = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    return probs, labels


# ----------------------------------------------------------------------------- training-time tracking
class CalibrationTracker(Callback):
    """A ``helpers.train.fit`` callback: ECE, NLL and error on (x, y) after every epoch.

    Results land in ``history.extra['calibration']`` as a dict of lists.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> None:
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"x and y must be non-empty and the same length, got {len(x)} and {len(y)}")
        self.x, self.y, self.n_bins = x, y, check_int("n_bins", n_bins, 1, 1000)
        self.record: dict[str, list[float]] = {}

    def on_train_begin(self, model: nn.Module) -> None:  # noqa: D102
        self.record = {"ece": [], "nll": [], "error": [], "confidence": []}

    def on_epoch_end(self, model: nn.Module, history: History) -> bool:  # noqa: D102
        from helpers.train import predict_logits

        report = calibration_report(predict_logits(model, self.x), self.y, self.n_bins)
        for key, value in (("ece", report["ece"]), ("nll", report["nll"]),
                           ("error", 1 - report["accuracy"]), ("confidence", report["confidence"])):
            self.record[key].append(value)
        return False

    def on_train_end(self, model: nn.Module, history: History) -> None:  # noqa: D102
        history.extra["calibration"] = self.record


# ----------------------------------------------------------------------------- experiments
def train_classifier(data, width: int = 256, depth: int = 2, epochs: int = 60, lr: float = 1e-3,
                     weight_decay: float = 0.0, label_smoothing: float = 0.0, batch_size: int = 128,
                     optimizer: str = "adam", seed: int = 0,
                     callbacks: Sequence[Callback] = ()) -> tuple[nn.Module, History]:
    """An MLP trained with ``helpers.train.fit`` (``optimizer`` as in ``helpers.train.make_optimizer``;
    with ``adam`` weight decay is an L2 penalty added to the gradient, with ``adamw`` it is decoupled).

    ``label_smoothing`` mixes each one-hot target with the uniform distribution (Szegedy et
    al. 2016); validation NLL is always reported against the true labels.
    """
    from functools import partial

    from helpers import models, train

    check_int("seed", seed, 0, 2**32 - 1)
    check_float("label_smoothing", label_smoothing, 0.0, 0.5)
    torch.manual_seed(seed)
    model = models.mlp(data.n_features, data.n_classes, width=width, depth=depth).to(data.x_train.device)
    loss_fn = partial(nn.functional.cross_entropy, label_smoothing=label_smoothing) if label_smoothing else None
    history = train.fit(model, data, epochs=epochs, lr=lr, optimizer=optimizer,
                        weight_decay=weight_decay, batch_size=batch_size, loss_fn=loss_fn,
                        callbacks=callbacks, seed=seed)
    return model, history


def unit_digits(seed: int = 0, device: torch.device | str | None = None):
    """scikit-learn digits with pixels divided by 16 (so in [0, 1]) instead of standardised.

    ``helpers.data.digits`` standardises each pixel with the training split's statistics; a
    pixel that is always 0 in training but not in a validation image then becomes ~1e8 and
    gives logits of ~1e7 for that image, which wrecks NLL and temperature fits.
    """
    from dataclasses import replace

    from helpers import data

    raw = data.digits(seed=seed, standardize=False, device=device)
    return replace(raw, x_train=raw.x_train / 16, x_val=raw.x_val / 16, x_test=raw.x_test / 16)


def evaluate_calibration(model: nn.Module, data, n_bins: int = 15) -> dict[str, float]:
    """Test-set calibration report of ``model`` before and after a temperature fitted on validation."""
    from helpers.train import predict_logits

    val_logits, test_logits = predict_logits(model, data.x_val), predict_logits(model, data.x_test)
    temperature = fit_temperature(val_logits, data.y_val)
    report = calibration_report(test_logits, data.y_test, n_bins)
    scaled = calibration_report(apply_temperature(test_logits, temperature), data.y_test, n_bins)
    return {**report, "temperature": temperature, "ece_scaled": scaled["ece"], "nll_scaled": scaled["nll"]}


def calibration_sweep(data, settings: dict[str, dict], seed: int = 0, n_bins: int = 15,
                      progress: Callable[[float], None] | None = None) -> dict[str, dict[str, float]]:
    """Train one model per named setting (keyword arguments of :func:`train_classifier`) and
    return each one's :func:`evaluate_calibration` report."""
    if not 1 <= len(settings) <= 20:
        raise ValueError(f"settings must name 1 to 20 models, got {len(settings)}")
    results = {}
    for i, (name, kwargs) in enumerate(settings.items()):
        model, _ = train_classifier(data, seed=seed, **kwargs)
        results[name] = evaluate_calibration(model, data, n_bins)
        if progress is not None:
            progress((i + 1) / len(settings))
    return results


def ece_noise_floor(sizes: Sequence[int], n_bins: int = 15, repeats: int = 5, sharpness: float = 2.0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Mean and spread of the ECE *measured* on a perfectly calibrated predictor, per sample size."""
    check_int("repeats", repeats, 1, 100)
    sizes = [check_int("size", s, 10, 1_000_000) for s in sizes]
    values = np.array([[expected_calibration_error(*synthetic_calibrated(s, sharpness=sharpness, seed=seed + r),
                                                   n_bins) for r in range(repeats)] for s in sizes])
    return {"n": np.array(sizes), "mean": values.mean(1), "std": values.std(1)}


# ----------------------------------------------------------------------------- figures
def _diagram_axes(fig, ax):
    """Split one axes into a reliability panel (top) and a bin-count histogram (below)."""
    spec = ax.get_subplotspec()
    ax.remove()
    inner = spec.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    top = fig.add_subplot(inner[0])
    bottom = fig.add_subplot(inner[1], sharex=top)
    return top, bottom


def _draw_reliability(top, bottom, bins: Bins, title: str, ece: float) -> None:
    from helpers.plotting import PALETTE

    width = bins.upper - bins.lower
    full = ~np.isnan(bins.accuracy)
    centre = (bins.lower + bins.upper) / 2
    top.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    top.bar(bins.lower[full], bins.accuracy[full], width[full], align="edge", color=PALETTE[0],
            edgecolor="white", label="accuracy in bin")
    low = np.minimum(bins.accuracy, bins.confidence)[full]
    top.bar(centre[full], np.abs(bins.accuracy - bins.confidence)[full], width[full] * 0.9, bottom=low,
            facecolor="none", edgecolor=PALETTE[1], hatch="///", lw=1.2, zorder=3,
            label="gap to mean confidence")
    top.plot(bins.confidence[full], bins.accuracy[full], "o", color="black", ms=3, zorder=4,
             label="bin (mean confidence, accuracy)")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy (fraction correct)", title=f"{title}\nECE = {ece:.3f}")
    top.tick_params(labelbottom=False)
    top.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.85)
    bottom.bar(bins.lower, bins.count / bins.n, width, align="edge", color="gray", edgecolor="white")
    bottom.set(xlabel="confidence (top-class probability)", ylabel="examples\n(fraction)")


def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, title: str = "Reliability diagram",
                        n_bins: int = 15, scheme: str = "equal-width"):
    """Accuracy vs confidence per bin, the gap to the diagonal shaded, bin counts beneath, ECE in the title."""
    return reliability_diagrams({title: (probs, labels)}, title=title, n_bins=n_bins, scheme=scheme)


def reliability_diagrams(panels: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str,
                         n_bins: int = 15, scheme: str = "equal-width"):
    """Side-by-side reliability diagrams, one per named ``(probs, labels)`` pair."""
    from helpers.plotting import figure

    if not 1 <= len(panels) <= 4:
        raise ValueError(f"panels must hold 1 to 4 (probs, labels) pairs, got {len(panels)}")
    check_choice("scheme", scheme, SCHEMES)
    stats = {name: (calibration_bins(p, y, n_bins, scheme), calibration_error(p, y, n_bins, scheme))
             for name, (p, y) in panels.items()}
    fig, axes = figure(title, "confidence (top-class probability)", "accuracy (fraction correct)",
                       ncols=len(panels), figsize=(4.6 * len(panels), 4.8))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, (name, (bins, ece)) in zip(axes, stats.items()):
        _draw_reliability(*_diagram_axes(fig, ax), bins, name, ece)
    if len(panels) > 1:
        fig.suptitle(title)
    return fig


def confidence_histogram(probs: torch.Tensor, labels: torch.Tensor, title: str, n_bins: int = 20):
    """Histogram of top-class confidence, split into right and wrong predictions, with the
    mean confidence and the accuracy marked: a gap between the two lines is over-confidence."""
    from helpers.plotting import PALETTE, figure

    confidence, correct = top_label(probs, labels)
    check_int("n_bins", n_bins, 2, 200)
    c, ok = confidence.double().cpu().numpy(), correct.cpu().numpy().astype(bool)
    fig, ax = figure(title, "confidence (top-class probability)", "examples (fraction of all)")
    edges = np.linspace(0, 1, n_bins + 1)
    weights = np.full(len(c), 1 / len(c))
    ax.hist([c[ok], c[~ok]], edges, weights=[weights[ok], weights[~ok]], stacked=True,
            color=[PALETTE[0], PALETTE[1]], label=["correct", "wrong"])
    ax.axvline(ok.mean(), color="black", ls="--", lw=1.2, label=f"accuracy {ok.mean():.2f}")
    ax.axvline(c.mean(), color=PALETTE[3], ls="-", lw=1.6, label=f"mean confidence {c.mean():.2f}")
    ax.legend()
    return fig


def epoch_curves(record: dict[str, list[float]], title: str = "Over-fitting shows in probabilities before accuracy"):
    """Validation error, NLL and ECE per epoch (from :class:`CalibrationTracker`), NLL's minimum marked."""
    from helpers.plotting import PALETTE, figure

    for key in ("error", "nll", "ece"):
        if key not in record or not record[key]:
            raise ValueError(f"record must hold a non-empty list under {key!r} (from CalibrationTracker)")
    epochs = np.arange(1, len(record["nll"]) + 1)
    best = int(np.argmin(record["nll"]))
    fig, (left, right) = figure(title, "epoch", "validation NLL (nats)", ncols=2, figsize=(10, 3.8))
    left.plot(epochs, record["nll"], color=PALETTE[1], label="validation NLL")
    left.axvline(best + 1, color="gray", ls=":", label=f"NLL minimum (epoch {best + 1})")
    twin = left.twinx()
    twin.plot(epochs, record["error"], color=PALETTE[0], label="validation error")
    twin.set_ylabel("validation error (fraction wrong)")
    twin.grid(False)
    lines = left.get_lines() + twin.get_lines()
    left.legend(lines, [line.get_label() for line in lines], loc="upper center")
    right.plot(epochs, record["ece"], color=PALETTE[2], label="validation ECE")
    right.plot(epochs, record["confidence"], color=PALETTE[3], ls="--", label="mean confidence")
    right.plot(epochs, 1 - np.asarray(record["error"]), color=PALETTE[0], ls="--", label="accuracy")
    right.axvline(best + 1, color="gray", ls=":")
    right.set_ylabel("ECE, confidence, accuracy (fraction)")
    right.legend()
    return fig


def nll_temperature_plot(val_logits: torch.Tensor, val_labels: torch.Tensor, test_logits: torch.Tensor,
                         test_labels: torch.Tensor, temperatures: Sequence[float], fitted: float):
    """NLL of softmax(logits / T) against T on validation and test, with the fitted T marked."""
    from helpers.plotting import figure

    fig, ax = figure("Temperature scaling minimises validation NLL", "temperature T (log scale)", "NLL (nats)")
    ax.plot(temperatures, temperature_nll(val_logits, val_labels, temperatures), label="validation (fitted here)")
    ax.plot(temperatures, temperature_nll(test_logits, test_labels, temperatures), ls="--", label="test (untouched)")
    ax.axvline(fitted, color="black", ls=":", label=f"fitted T = {fitted:.2f}")
    ax.axvline(1.0, color="gray", lw=1, label="T = 1 (as trained)")
    ax.set_xscale("log")
    ax.legend()
    return fig


def sweep_bars(results: dict[str, dict[str, float]], title: str):
    """Test ECE before and after temperature scaling for each named model of a sweep."""
    from helpers.plotting import PALETTE, figure

    if not results:
        raise ValueError("results must hold at least one model")
    names = list(results)
    x = np.arange(len(names))
    fig, ax = figure(title, "model", "test ECE (fraction)", figsize=(max(6.4, 1.6 * len(names)), 4.2))
    ax.bar(x - 0.2, [results[n]["ece"] for n in names], 0.4, color=PALETTE[1], label="as trained")
    ax.bar(x + 0.2, [results[n]["ece_scaled"] for n in names], 0.4, color=PALETTE[0],
           label="after temperature scaling")
    for xi, n in zip(x, names):
        ax.text(xi, results[n]["ece"] + 0.005, f"T={results[n]['temperature']:.2f}", ha="center", fontsize=7)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.legend()
    return fig


def coverage_plot(curves: dict[str, dict[str, np.ndarray]], title: str = "Act only when confident",
                  mark: float | None = None):
    """Left: accuracy on the cases acted on against the threshold t (a calibrated model stays on or
    above the diagonal). Right: the same accuracy against coverage (the ranking view; temperature
    barely moves it). ``mark`` highlights one threshold on both panels."""
    from helpers.plotting import PALETTE, figure

    fig, (left, right) = figure(title, "confidence threshold t", "accuracy when acting (fraction)", ncols=2,
                                figsize=(10, 3.8))
    for color, (name, c) in zip(PALETTE, curves.items()):
        left.plot(c["threshold"], c["accuracy"], "o-", ms=3, color=color, label=name)
        right.plot(c["coverage"], c["accuracy"], "o-", ms=3, color=color, label=name)
        if mark is not None:
            i = int(np.argmin(np.abs(c["threshold"] - mark)))
            left.plot(c["threshold"][i], c["accuracy"][i], "s", ms=9, mfc="none", color="black")
            right.plot(c["coverage"][i], c["accuracy"][i], "s", ms=9, mfc="none", color="black")
    left.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="accuracy = threshold")
    left.set(xlim=(0, 1), ylim=(0, 1.02), title="Does the threshold keep its promise?")
    right.set(xlabel="coverage (fraction of cases acted on)", xlim=(0, 1.02), ylim=(0, 1.02),
              title="Ranking view: accuracy against coverage")
    if mark is not None:
        left.plot([], [], "s", ms=9, mfc="none", color="black", label=f"t = {mark:g}")
    left.legend()
    right.legend()
    return fig


def noise_floor_plot(floor: dict[str, np.ndarray], title: str = "ECE of a perfectly calibrated model"):
    """Measured ECE (mean and spread over repeats) against the number of test examples, log-log."""
    from helpers.plotting import figure

    fig, ax = figure(title, "test examples (count)", "measured ECE (fraction)")
    ax.errorbar(floor["n"], floor["mean"], yerr=floor["std"], fmt="o-", capsize=3, label="measured ECE (mean ± sd)")
    ref = floor["mean"][0] * np.sqrt(floor["n"][0] / floor["n"])
    ax.plot(floor["n"], ref, ls="--", color="gray", label="1/sqrt(n) reference")
    ax.set(xscale="log", yscale="log")
    ax.legend()
    return fig


# ----------------------------------------------------------------------------- explorers
def explore_temperature(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                        n_bins: int = 15):
    """Explorer: reliability diagram and numbers of softmax(logits / T) for one temperature."""
    check_float("temperature", temperature, 0.25, 8.0)
    check_int("n_bins", n_bins, 5, 30)
    report = calibration_report(apply_temperature(logits, temperature), labels, n_bins)
    probs = (logits.detach().cpu().double() / temperature).softmax(-1)
    fig = reliability_diagram(probs, labels, f"Temperature T = {temperature:.2f}", n_bins)
    numbers = {"temperature": round(temperature, 3), **{k: round(v, 4) for k, v in report.items()}}
    return fig, numbers


def explore_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, scheme: str = "equal-width"):
    """Explorer: how the ECE estimate moves with the number of bins and the binning scheme."""
    from helpers.plotting import PALETTE, figure

    check_int("n_bins", n_bins, 5, 30)
    check_choice("scheme", scheme, SCHEMES)
    counts = list(range(5, 31))
    confidence, correct = top_label(probs, labels)
    curves = {s: [_ece_from(_bins_from(confidence, correct, m, s)) for m in counts] for s in SCHEMES}
    fig, axes = figure(f"ECE estimate: {n_bins} {scheme} bins", "confidence (top-class probability)",
                       "accuracy (fraction correct)", ncols=2, figsize=(9.6, 4.8))
    _draw_reliability(*_diagram_axes(fig, axes[0]), _bins_from(confidence, correct, n_bins, scheme),
                      f"{n_bins} {scheme} bins", curves[scheme][n_bins - 5])
    right = axes[1]
    for color, s in zip(PALETTE, SCHEMES):
        right.plot(counts, curves[s], "o-", ms=3, color=color, label=s)
    right.plot([n_bins], [curves[scheme][n_bins - 5]], "s", ms=9, mfc="none", color="black", label="current")
    right.set(xlabel="number of bins", ylabel="ECE (fraction)", title="ECE against number of bins")
    right.legend()
    numbers = {"n_bins": n_bins, "scheme": scheme, "ece": round(curves[scheme][n_bins - 5], 4),
               "ece range over 5-30 bins": f"{min(curves[scheme]):.4f}-{max(curves[scheme]):.4f}"}
    return fig, numbers


# ----------------------------------------------------------------------------- exercises
HAND_CASE_CONFIDENCE = (0.95, 0.9, 0.85, 0.8, 0.72, 0.65, 0.6, 0.55, 0.4, 0.3)
HAND_CASE_CORRECT = (1, 1, 0, 1, 1, 0, 1, 0, 1, 0)
HAND_CASE_BINS = 5


def hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """The 10-example exercise as (probs, labels): four classes, class 0 predicted with the listed
    confidence (the rest shared equally), label 0 where the prediction is right and 1 where wrong."""
    conf = torch.tensor(HAND_CASE_CONFIDENCE, dtype=torch.float64)
    rest = ((1 - conf) / 3).unsqueeze(1).expand(-1, 3)
    probs = torch.cat([conf.unsqueeze(1), rest], dim=1)
    labels = 1 - torch.tensor(HAND_CASE_CORRECT)
    return probs, labels


def _not_attempted(answer, what: str) -> bool:
    if answer is None:
        print(f"Not attempted yet: {what}")
        return True
    return False


def check_hand_ece(answer: float | None) -> bool:
    """Checker for the hand-computed ECE of :func:`hand_case` with 5 equal-width bins."""
    if _not_attempted(answer, "replace None with your hand-computed ECE."):
        return False
    expected = expected_calibration_error(*hand_case(), n_bins=HAND_CASE_BINS)
    if not isinstance(answer, (int, float)) or not math.isclose(float(answer), expected, abs_tol=5e-4):
        raise AssertionError(
            f"Your ECE {answer!r} is not right. Hint: bins are (0, 0.2], (0.2, 0.4], ..., (0.8, 1.0]; "
            "0.8 belongs to (0.6, 0.8]. In each bin take |accuracy - mean confidence|, weight it by "
            "(examples in bin)/10 and add the bins up.")
    print(f"Correct: ECE = {expected:.4f}, and expected_calibration_error agrees.")
    return True


def check_temperature_search(search: Callable[[torch.Tensor, torch.Tensor], float],
                             logits: torch.Tensor, labels: torch.Tensor, rel_tol: float = 0.05) -> bool:
    """Checker: ``search(logits, labels)`` must return a T within ``rel_tol`` of :func:`fit_temperature`."""
    check_float("rel_tol", rel_tol, 0.0, 1.0, lo_open=True)
    try:
        found = search(logits, labels)
    except NotImplementedError:
        found = None
    if _not_attempted(found, "implement search_temperature (a grid or golden-section search over T)."):
        return False
    fitted = fit_temperature(logits, labels)
    if not isinstance(found, (int, float)) or not math.isfinite(found) or found <= 0:
        raise AssertionError(f"search_temperature must return one positive number, got {found!r}")
    if abs(found - fitted) > rel_tol * fitted:
        raise AssertionError(
            f"Your search found T = {found:.3f} but fit_temperature finds {fitted:.3f}. Hint: minimise the "
            "mean cross-entropy of logits / T over a fine grid of T on a log scale (e.g. 0.1 to 10), "
            "and make sure you divide the logits by T rather than multiply.")
    print(f"Correct: your search found T = {found:.3f}; fit_temperature found T = {fitted:.3f}.")
    return True
