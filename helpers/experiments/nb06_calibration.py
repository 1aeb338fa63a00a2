"""Notebook 06 (calibration): the training runs, the measurements built on them, and the exercise checkers.

The science (calibration error, temperature scaling, histogram binning, focal loss) is in
``helpers.scratch.calibration``; the figures and explorers are in ``nb06_calibration_figures``.
Everything after training works on logits, so a notebook trains each model once and reuses it. Those
logits and their labels are brought to the CPU: they are small, and measuring in float64 there works
whatever device trained the model (Apple's MPS has no float64).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import data as datasets
from helpers import exercises, metrics, models, progress, train
from helpers.scratch import calibration as scratch
from helpers.validation import check_float, check_int

MAX_BOOTSTRAP = 10_000
TRUTH_SIZE = 300_000


# ----------------------------------------------------------------------------- training
class CalibrationTracker(train.Callback):
    """A ``fit`` callback: validation error, NLL, ECE and mean confidence before training and after every epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> None:
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"x and y must be non-empty and the same length, got {len(x)} and {len(y)}")
        self.x, self.y, self.n_bins = x, y, check_int("n_bins", n_bins, 1, 1000)
        self.record: dict[str, list[float]] = {}

    def measure(self, model: nn.Module) -> None:
        report = summary(train.predict_logits(model, self.x).cpu().softmax(-1), self.y.cpu(), self.n_bins)
        for key in ("ece", "nll", "confidence"):
            self.record[key].append(report[key])
        self.record["error"].append(1 - report["accuracy"])

    def on_train_begin(self, model: nn.Module) -> None:  # noqa: D102
        self.record = {"ece": [], "nll": [], "error": [], "confidence": []}
        self.measure(model)

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:  # noqa: D102
        self.measure(model)
        return False

    def on_train_end(self, model: nn.Module, history: train.History) -> None:  # noqa: D102
        history.extra["calibration"] = self.record


def train_classifier(data: datasets.Splits, width: int = 256, depth: int = 2, epochs: int = 60, lr: float = 1e-3,
                     weight_decay: float = 0.0, label_smoothing: float = 0.0, focal_gamma: float = 0.0,
                     seed: int = 0, callbacks: Sequence[train.Callback] = ()) -> tuple[nn.Module, train.History]:
    """An MLP trained with Adam through ``helpers.train.fit`` on cross-entropy, label-smoothed
    cross-entropy (Szegedy et al. 2016) or focal loss; ``weight_decay`` is Adam's L2 penalty on the weights."""
    check_int("seed", seed, 0, 2**32 - 1)
    check_float("label_smoothing", label_smoothing, 0.0, 0.5)
    check_float("focal_gamma", focal_gamma, 0.0, 10.0)
    if label_smoothing and focal_gamma:
        raise ValueError("label_smoothing and focal_gamma cannot both be set: pick one training loss")
    loss_fn = (partial(scratch.focal_loss, gamma=focal_gamma) if focal_gamma else
               partial(functional.cross_entropy, label_smoothing=label_smoothing) if label_smoothing else None)
    torch.manual_seed(seed)
    model = models.mlp(data.n_features, data.n_classes, width=width, depth=depth)
    history = train.fit(model, data, epochs=epochs, lr=lr, optimizer="adam", weight_decay=weight_decay,
                        loss_fn=loss_fn, callbacks=callbacks, seed=seed)
    return model, history


def unit_digits(seed: int = 0, device: torch.device | str | None = None) -> datasets.Splits:
    """scikit-learn's digits with pixels divided by 16 (into [0, 1]) instead of standardised.

    Standardising with the training split's statistics turns a pixel that is blank in every training
    image but not in some validation image into a value near 1e8, and the logits of that image explode.
    """
    raw = datasets.digits(seed=seed, standardize=False, device=device)
    return replace(raw, x_train=raw.x_train / 16, x_val=raw.x_val / 16, x_test=raw.x_test / 16)


# ----------------------------------------------------------------------------- measuring
READABLE = {"accuracy": "accuracy", "confidence": "mean confidence", "ece": "ECE", "nll": "NLL (nats)",
            "brier": "Brier"}


def readable(report: Mapping[str, float]) -> dict[str, float]:
    """A :func:`summary` with column names in words, for a table."""
    return {READABLE[key]: value for key, value in report.items()}


def summary(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, mean confidence, top-label ECE, NLL (nats) and multi-class Brier score of ``probs``."""
    confidence, correct = scratch.top_label(probs, labels)
    return {"accuracy": float(correct.mean()), "confidence": float(confidence.mean()),
            "ece": scratch.expected_calibration_error(probs, labels, n_bins),
            "nll": metrics.nll(probs.double().clamp_min(1e-12).log(), labels),
            "brier": brier_parts(probs, labels, n_bins)["brier"]}


@dataclass(frozen=True)
class Calibrated:
    """A trained model's validation and test logits and labels (on the CPU), the temperature fitted on
    validation, and the test summaries before and after dividing by it."""

    val_logits: torch.Tensor
    val_labels: torch.Tensor
    test_logits: torch.Tensor
    test_labels: torch.Tensor
    temperature: float
    before: dict[str, float]
    after: dict[str, float]


def calibrate(model: nn.Module, data: datasets.Splits, n_bins: int = 15) -> Calibrated:
    """Fit a temperature on the validation logits and summarise the test set with and without it."""
    val_logits, test_logits = (train.predict_logits(model, x).cpu() for x in (data.x_val, data.x_test))
    val_labels, test_labels = data.y_val.cpu(), data.y_test.cpu()
    temperature = scratch.fit_temperature(val_logits, val_labels)
    return Calibrated(val_logits, val_labels, test_logits, test_labels, temperature,
                      summary(test_logits.softmax(-1), test_labels, n_bins),
                      summary((test_logits / temperature).softmax(-1), test_labels, n_bins))


def calibration_sweep(data: datasets.Splits, settings: Mapping[str, dict], seed: int = 0,
                      n_bins: int = 15) -> dict[str, Calibrated]:
    """Train one model per named setting (keyword arguments of :func:`train_classifier`) and calibrate it."""
    if not 1 <= len(settings) <= 20:
        raise ValueError(f"settings must name 1 to 20 models, got {len(settings)}")
    return {name: calibrate(train_classifier(data, seed=seed, **kwargs)[0], data, n_bins)
            for name, kwargs in settings.items()}


def top_group(confidence: torch.Tensor, correct: torch.Tensor, threshold: float = 0.8) -> dict[str, float]:
    """How many forecasts reach ``threshold``, their mean confidence and how often they are right (nan if none)."""
    scratch.check_forecasts(confidence, correct)
    check_float("threshold", threshold, 0.0, 1.0)
    kept = confidence >= threshold
    count = int(kept.sum())
    mean = (lambda values: float(values[kept].double().mean())) if count else (lambda values: math.nan)
    return {"count": count, "confidence": mean(confidence), "accuracy": mean(correct)}


def top_label_log_loss(confidence: torch.Tensor, correct: torch.Tensor) -> float:
    """Mean log loss (nats) of the event "the top class is right" forecast with ``confidence``."""
    scratch.check_forecasts(confidence, correct)
    confidence = confidence.double().clamp(1e-6, 1 - 1e-6)
    return float(-(correct * confidence.log() + (1 - correct) * (1 - confidence).log()).mean())


def one_vs_rest_binning(val_probs: torch.Tensor, val_labels: torch.Tensor, probs: torch.Tensor,
                        n_bins: int = 10) -> torch.Tensor:
    """Histogram binning of every class's probability on its own, rows renormalised (the multi-class
    extension Guo et al. 2017 compare with): unlike top-label binning it can change the predicted class."""
    classes = val_probs.shape[1]
    val_is_class = functional.one_hot(val_labels, classes).double()
    columns = [scratch.fit_histogram_binning(val_probs[:, k].double(), val_is_class[:, k], n_bins)(probs[:, k])
               for k in range(classes)]
    stacked = torch.stack(columns, 1)                                       # (n, K)
    return stacked / stacked.sum(-1, keepdim=True)


def recalibration_table(run: Calibrated, binning_bins: int = 10, threshold: float = 0.8,
                        n_bins: int = 15) -> list[dict]:
    """Temperature scaling against histogram binning, all fitted on the same validation split, on test."""
    val_probs, test_probs = run.val_logits.softmax(-1).double(), run.test_logits.softmax(-1).double()
    val_confidence, val_correct = scratch.top_label(val_probs, run.val_labels)
    confidence, correct = scratch.top_label(test_probs, run.test_labels)
    prediction = test_probs.argmax(-1)
    binned = one_vs_rest_binning(val_probs, run.val_labels, test_probs, binning_bins)
    binned_confidence, binned_correct = scratch.top_label(binned, run.test_labels)
    methods = {
        "as trained": (confidence, correct, 0),
        "temperature scaling":
            (*scratch.top_label((run.test_logits / run.temperature).softmax(-1), run.test_labels), 0),
        "top-label histogram binning":
            (scratch.fit_histogram_binning(val_confidence, val_correct, binning_bins)(confidence), correct, 0),
        "one-vs-rest histogram binning":
            (binned_confidence, binned_correct, int((binned.argmax(-1) != prediction).sum())),
    }
    rows = []
    for name, (method_confidence, method_correct, changed) in methods.items():
        group = top_group(method_confidence, method_correct, threshold)
        rows.append({"method": name, "predictions changed": changed, "accuracy": float(method_correct.mean()),
                     "ECE": scratch.calibration_error(method_confidence, method_correct, n_bins),
                     "top-label log loss (nats)": top_label_log_loss(method_confidence, method_correct),
                     f"cases at or above {threshold:g}": group["count"],
                     "their mean confidence": group["confidence"], "their accuracy": group["accuracy"]})
    return rows


def brier_parts(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Multi-class Brier score and its parts: :func:`scratch.brier_decomposition` of every event
    "the label is k", added up over the classes."""
    scratch.top_label(probs, labels)                                        # validates probs and labels
    is_class = functional.one_hot(labels, probs.shape[1]).double()          # (n, K)
    parts = [scratch.brier_decomposition(probs[:, k].double(), is_class[:, k], n_bins) for k in range(probs.shape[1])]
    return {key: sum(part[key] for part in parts) for key in parts[0]}


def base_rate_probs(train_labels: torch.Tensor, n: int, n_classes: int) -> torch.Tensor:
    """The predictor that ignores its input: every row is the class frequencies of the training labels."""
    check_int("n", n, 1, 10_000_000)
    rates = torch.bincount(train_labels.cpu(), minlength=n_classes).double() / len(train_labels)
    return rates.expand(n, n_classes).contiguous()


def sharpness_table(predictors: Mapping[str, torch.Tensor], labels: torch.Tensor, n_bins: int = 15) -> list[dict]:
    """For each named predictor: accuracy, top-label and class-wise ECE, and the Brier score's parts."""
    rows = []
    for name, probs in predictors.items():
        parts = brier_parts(probs, labels, n_bins)
        rows.append({"predictor": name, "accuracy": float(scratch.top_label(probs, labels)[1].mean()),
                     "ECE (top label)": scratch.expected_calibration_error(probs, labels, n_bins),
                     "class-wise ECE": scratch.classwise_calibration_error(probs, labels, n_bins),
                     "Brier": parts["brier"], "reliability": parts["reliability"],
                     "resolution": parts["resolution"], "uncertainty": parts["uncertainty"]})
    return rows


def scrambled_alternatives(probs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The same top class with the same confidence, the other probabilities handed to the other classes in a
    random order: top-label calibration is untouched, the probabilities of the alternatives become noise."""
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    order = probs.argsort(-1, descending=True)                              # (n, K) classes, most likely first
    ranked = probs.gather(1, order)                                         # (n, K) probabilities, descending
    shuffle = torch.rand(ranked[:, 1:].shape, generator=generator).argsort(-1).to(probs.device)   # (n, K-1)
    scrambled = torch.cat([ranked[:, :1], ranked[:, 1:].gather(1, shuffle)], 1)
    return torch.zeros_like(probs).scatter(1, order, scrambled)


# ----------------------------------------------------------------------------- shift and segments
def add_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Inputs corrupted by Gaussian noise of standard deviation ``sigma`` (in standardised units)."""
    check_float("sigma", sigma, 0.0, 10.0)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    return x + sigma * torch.randn(x.shape, generator=generator).to(x.device)


def shifted_logits(model: nn.Module, data: datasets.Splits, sigmas: Sequence[float],
                   seed: int = 0) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """Validation and test logits (on the CPU) of ``model`` on inputs corrupted at each noise level."""
    if not 1 <= len(sigmas) <= 20:
        raise ValueError(f"sigmas must hold 1 to 20 noise levels, got {len(sigmas)}")
    return {float(sigma): (train.predict_logits(model, add_noise(data.x_val, sigma, seed)).cpu(),
                           train.predict_logits(model, add_noise(data.x_test, sigma, seed + 1)).cpu())
            for sigma in sigmas}


def shift_study(run: Calibrated, shifted: Mapping[float, tuple[torch.Tensor, torch.Tensor]],
                n_bins: int = 15) -> list[dict]:
    """Per noise level: test accuracy and ECE as trained, with the clean-validation temperature, and with a
    temperature refitted on validation data shifted the same way."""
    rows = []
    for sigma, (val_logits, test_logits) in shifted.items():
        refitted = scratch.fit_temperature(val_logits, run.val_labels)
        ece = {name: scratch.expected_calibration_error((test_logits / t).softmax(-1), run.test_labels, n_bins)
               for name, t in (("as trained", 1.0), ("clean T", run.temperature), ("refitted T", refitted))}
        rows.append({"noise": sigma, "accuracy": metrics.accuracy(test_logits, run.test_labels),
                     "ECE as trained": ece["as trained"], "ECE, T from clean validation": ece["clean T"],
                     "ECE, T refitted on shifted validation": ece["refitted T"], "refitted T": refitted})
    return rows


def segment_study(run: Calibrated, noisy: tuple[torch.Tensor, torch.Tensor], n_bins: int = 15) -> dict:
    """Two segments of traffic, clean and noisy inputs: one temperature fitted on their pooled validation
    data, against one temperature per segment.  Gaps are mean confidence minus accuracy (+ over-confident)."""
    segments = {"clean": (run.val_logits, run.test_logits), "noisy": noisy}
    pooled = scratch.fit_temperature(torch.cat([run.val_logits, noisy[0]]), torch.cat([run.val_labels] * 2))
    rows = []
    for name, (val_logits, test_logits) in segments.items():
        own = scratch.fit_temperature(val_logits, run.val_labels)
        for label, temperature in (("one T for both", pooled), ("T per segment", own)):
            confidence, correct = scratch.top_label((test_logits / temperature).softmax(-1), run.test_labels)
            rows.append({"segment": name, "temperature": label, "T": temperature,
                         "ECE": scratch.calibration_error(confidence, correct, n_bins),
                         "confidence - accuracy": float(confidence.mean() - correct.mean())})
    both = (torch.cat([run.test_logits, noisy[1]]) / pooled).softmax(-1)                        # both segments
    return {"rows": rows,
            "pooled ECE": scratch.expected_calibration_error(both, torch.cat([run.test_labels] * 2), n_bins)}


# ----------------------------------------------------------------------------- decisions
def coverage_accuracy(probs: torch.Tensor, labels: torch.Tensor, thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """Act only when confidence >= t: per t, the fraction acted on, their accuracy and their mean confidence."""
    confidence, correct = scratch.top_label(probs, labels)
    ts = np.array([check_float("threshold", t, 0.0, 1.0) for t in thresholds], dtype=float)
    if not 1 <= len(ts) <= 10_000:
        raise ValueError(f"thresholds must hold 1 to 10000 values, got {len(ts)}")
    keep = confidence.double().cpu().numpy()[None, :] >= ts[:, None]       # (thresholds, n)
    covered = keep.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(covered > 0, keep @ correct.cpu().numpy() / covered, np.nan)
        mean_confidence = np.where(covered > 0, keep @ confidence.double().cpu().numpy() / covered, np.nan)
    return {"threshold": ts, "coverage": covered / keep.shape[1], "accuracy": accuracy, "confidence": mean_confidence}


def decision_cost(confidence: torch.Tensor, correct: torch.Tensor, threshold: float, review_cost: float) -> float:
    """Mean cost per case of "act when confidence >= threshold, else send to review": a wrong action costs 1,
    a review costs ``review_cost``, a right action nothing."""
    scratch.check_forecasts(confidence, correct)
    check_float("review_cost", review_cost, 0.0, 1.0)
    act = (confidence.double() >= threshold).double()                       # (n,) 1 = acted on
    return float((act * (1 - correct) + (1 - act) * review_cost).mean())


def tuned_threshold(confidence: torch.Tensor, correct: torch.Tensor, review_cost: float) -> float:
    """The threshold with the lowest :func:`decision_cost` on these (validation) forecasts, searched over
    their own confidences and "act on nothing"."""
    candidates = torch.cat([confidence.double().unique(), torch.tensor([1.5], dtype=torch.float64)])
    costs = [decision_cost(confidence, correct, float(t), review_cost) for t in candidates]
    return float(candidates[int(np.argmin(costs))])


def cost_study(run: Calibrated, review_costs: Sequence[float]) -> list[dict]:
    """Per review cost r: the test cost of acting at the Bayes threshold 1 - r (right only for calibrated
    probabilities) before and after temperature scaling, against the unscaled model with a threshold
    tuned on validation (the control) and against reviewing every case (cost r)."""
    if not 1 <= len(review_costs) <= 20:
        raise ValueError(f"review_costs must hold 1 to 20 values, got {len(review_costs)}")
    pairs = {name: (scratch.top_label((run.val_logits.double() / t).softmax(-1), run.val_labels),
                    scratch.top_label((run.test_logits.double() / t).softmax(-1), run.test_labels))
             for name, t in (("before", 1.0), ("after", run.temperature))}
    rows = []
    for r in review_costs:
        check_float("review_cost", r, 0.01, 0.99)
        bayes = 1 - r                                                       # act iff (1 - p) * 1 < r
        tuned = tuned_threshold(*pairs["before"][0], r)
        rows.append({"review cost": r, "Bayes threshold 1 - r": bayes,
                     "before scaling, at 1 - r": decision_cost(*pairs["before"][1], bayes, r),
                     "after scaling, at 1 - r": decision_cost(*pairs["after"][1], bayes, r),
                     "before scaling, threshold tuned on validation": decision_cost(*pairs["before"][1], tuned, r),
                     "tuned threshold": tuned if tuned <= 1 else "none: review all", "review every case": r})
    return rows


def confidence_auroc(confidence: torch.Tensor, correct: torch.Tensor) -> float:
    """How well confidence ranks right above wrong predictions: the probability that a random right one
    is more confident than a random wrong one (ties count half; Mann-Whitney)."""
    scratch.check_forecasts(confidence, correct)
    right, wrong = confidence[correct == 1].double(), confidence[correct == 0].double()
    if len(right) == 0 or len(wrong) == 0:
        return math.nan
    wrong = wrong.sort().values
    below = torch.searchsorted(wrong, right, right=False).double()          # (right,) wrong ones strictly lower
    tied = torch.searchsorted(wrong, right, right=True).double() - below    # (right,) wrong ones equal
    return float((below + 0.5 * tied).mean() / len(wrong))


# ----------------------------------------------------------------------------- how far to trust an ECE number
def synthetic_forecasts(n: int, n_classes: int = 10, spread: float = 2.0, sharpen: float = 1.0,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z) with z ~ N(0, spread^2), reported as softmax(sharpen * z): perfectly
    calibrated for ``sharpen = 1`` (any ECE measured is noise), over-confident above 1."""
    check_int("n", n, 1, 2_000_000)
    check_int("n_classes", n_classes, 2, 1000)
    check_float("spread", spread, 0.0, 20.0)
    check_float("sharpen", sharpen, 0.1, 10.0)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    logits = torch.randn(n, n_classes, generator=generator, dtype=torch.float64) * spread
    labels = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    return (sharpen * logits).softmax(-1), labels


def ece_noise_floor(sizes: Sequence[int], n_bins: int = 15, repeats: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean and spread of the ECE measured on a perfectly calibrated predictor, per number of examples."""
    check_int("repeats", repeats, 1, 100)
    sizes = [check_int("size", size, 10, 1_000_000) for size in sizes]
    values = np.array([[scratch.expected_calibration_error(*synthetic_forecasts(size, seed=seed + r), n_bins)
                        for r in range(repeats)] for size in sizes])
    return {"n": np.array(sizes), "mean": values.mean(1), "std": values.std(1)}


def noise_check(confidence: torch.Tensor, correct: torch.Tensor, n_draws: int = 200, n_bins: int = 15,
                seed: int = 0) -> dict[str, float]:
    """The ECE beside the ECEs of outcomes resampled from the same confidences (perfectly calibrated by
    construction): their mean, their 95th percentile, and the p-value (1 + draws at or above) / (1 + draws)."""
    observed = scratch.calibration_error(confidence, correct, n_bins)
    null = scratch.resampled_errors(confidence, n_draws, n_bins, seed=seed).numpy()   # (D,)
    return {"ECE": observed, "ECE if calibrated: mean": float(null.mean()),
            "ECE if calibrated: 95th percentile": float(np.quantile(null, 0.95)),
            "p-value": float((1 + (null >= observed - 1e-12).sum()) / (1 + n_draws))}


def bootstrap_ece(confidence: torch.Tensor, correct: torch.Tensor, n_boot: int = 1000, n_bins: int = 15,
                  level: float = 0.9, seed: int = 0) -> dict[str, float]:
    """The ECE, its percentile bootstrap interval, the replicates' mean, and the bias-corrected estimate
    2 * ECE - mean(replicates) (resampling adds the same upward bias again, so its size is measured).

    All replicates at once: a bin's |B_m| * |acc - conf| is the absolute sum of (correct - confidence) in it.
    """
    scratch.check_forecasts(confidence, correct)
    check_int("n_boot", n_boot, 10, MAX_BOOTSTRAP)
    check_float("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    n = len(confidence)
    if n * n_boot > 50_000_000:
        raise ValueError(f"n_boot must be at most {50_000_000 // n} for {n} examples")
    bin_of = scratch.bin_indices(confidence, n_bins).cpu()                  # (n,)
    surplus = (correct - confidence.double()).cpu()                          # (n,)
    draws = torch.randint(0, n, (n_boot, n), generator=torch.Generator().manual_seed(seed))   # (B, n)
    flat = (torch.arange(n_boot).unsqueeze(1) * n_bins + bin_of[draws]).flatten()
    replicates = torch.bincount(flat, surplus[draws].flatten(), minlength=n_boot * n_bins).view(n_boot, n_bins)
    values = (replicates.abs().sum(1) / n).numpy()                           # (B,)
    estimate = scratch.calibration_error(confidence, correct, n_bins)
    alpha = (1 - level) / 2
    return {"ECE": estimate, "interval low": float(np.quantile(values, alpha)),
            "interval high": float(np.quantile(values, 1 - alpha)), "replicate mean": float(values.mean()),
            "bias-corrected": 2 * estimate - float(values.mean())}


def debiasing_study(n: int = 200, repeats: int = 40, n_boot: int = 200, sharpen: float = 1.2, n_bins: int = 15,
                    seed: int = 0, report: progress.Report | None = None) -> dict[str, float]:
    """On a synthetic over-confident predictor whose true ECE is known (measured on TRUTH_SIZE examples):
    the mean absolute error of the plain and the bias-corrected estimate on ``n`` examples, and how often
    the percentile interval contains the truth."""
    check_int("repeats", repeats, 2, 1000)
    truth = scratch.expected_calibration_error(*synthetic_forecasts(TRUTH_SIZE, sharpen=sharpen, seed=seed), n_bins)
    plain, corrected, covered = [], [], []
    for r in progress.steps(repeats, report):
        confidence, correct = scratch.top_label(*synthetic_forecasts(n, sharpen=sharpen, seed=seed + 1 + r))
        estimate = bootstrap_ece(confidence, correct, n_boot, n_bins, seed=seed + r)
        plain.append(estimate["ECE"] - truth)
        corrected.append(estimate["bias-corrected"] - truth)
        covered.append(estimate["interval low"] <= truth <= estimate["interval high"])
    return {"true ECE": truth, "mean error, plain": float(np.mean(plain)),
            "mean error, bias-corrected": float(np.mean(corrected)),
            "mean absolute error, plain": float(np.mean(np.abs(plain))),
            "mean absolute error, bias-corrected": float(np.mean(np.abs(corrected))),
            "interval coverage": float(np.mean(covered))}


# ----------------------------------------------------------------------------- exercises
HAND_CASE_CONFIDENCE = (0.95, 0.9, 0.85, 0.8, 0.72, 0.65, 0.6, 0.55, 0.4, 0.3)
HAND_CASE_CORRECT = (1, 1, 0, 1, 1, 0, 1, 0, 1, 0)
HAND_CASE_BINS = 5


def hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """The ten predictions of the exercise as (confidence, correct)."""
    return (torch.tensor(HAND_CASE_CONFIDENCE, dtype=torch.float64),
            torch.tensor(HAND_CASE_CORRECT, dtype=torch.float64))


def check_hand_ece(answer: float | None) -> bool:
    """Checker for the hand-computed ECE of :func:`hand_case` with five equal-width bins."""
    if answer is None:
        return exercises.not_attempted("replace None with your hand-computed ECE")
    expected = scratch.calibration_error(*hand_case(), n_bins=HAND_CASE_BINS)
    if not isinstance(answer, (int, float)) or not math.isclose(float(answer), expected, abs_tol=5e-4):
        return exercises.wrong(f"{answer!r} is not the ECE of these ten predictions.",
                               "bins are (0, 0.2], (0.2, 0.4], ..., (0.8, 1]; 0.8 belongs to (0.6, 0.8]. In each bin "
                               "take |accuracy - mean confidence|, weight it by (examples in bin) / 10, add the bins.")
    return exercises.correct(f"ECE = {expected:.4f}, and scratch.calibration_error agrees.")


def check_fitted_on_test(ece_when_fitted_on_test: Callable[[torch.Tensor, torch.Tensor], float] | None,
                         test_confidence: torch.Tensor, test_correct: torch.Tensor, honest_ece: float,
                         n_bins: int = 10) -> bool:
    """Checker: ``ece_when_fitted_on_test(confidence, correct)`` must fit top-label histogram binning with
    ``n_bins`` bins on the test forecasts, apply it to the same forecasts and return their ECE (15 bins)."""
    found = exercises.attempt(ece_when_fitted_on_test, test_confidence, test_correct, what="ece_when_fitted_on_test")
    if found is exercises.NOT_ATTEMPTED:
        return False
    binning = scratch.fit_histogram_binning(test_confidence, test_correct, n_bins)
    flattering = scratch.calibration_error(binning(test_confidence), test_correct)
    if not isinstance(found, (int, float)) or not math.isclose(float(found), flattering, abs_tol=1e-4):
        return exercises.wrong(f"ece_when_fitted_on_test returned {found!r}, not the in-sample ECE of the binning.",
                               f"binning = scratch.fit_histogram_binning(confidence, correct, {n_bins}); then return "
                               "scratch.calibration_error(binning(confidence), correct).")
    return exercises.correct(f"fitted and scored on the same test forecasts, binning reports ECE {flattering:.4f}; "
                             f"fitted on validation it scores {honest_ece:.4f} on test, the number to report.")
