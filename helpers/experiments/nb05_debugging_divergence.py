"""Notebook 05, train/validation divergence: leakage, shift and drift, and the checks that see each.

The faults come from :mod:`helpers.scratch.data_faults`, the audits from :mod:`helpers.scratch.split_audit`,
and the checklist from :mod:`helpers.scratch.diagnose`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from helpers import data as datasets
from helpers import plotting
from helpers.progress import Report as ProgressReport
from helpers.scratch import data_faults
from helpers.scratch.diagnose import RULES, STEPS, diagnose
from helpers.scratch.pipeline import Run, classifier, evaluate, train
from helpers.validation import check_float, check_int

THRESHOLDS = {rule.key: rule.threshold for rule in RULES}


def explore_divergence(leak_fraction: float = 0.0, shift_size: float = 0.0, seed: int = 0, steps: int = 200,
                       run: Run | None = None, progress: ProgressReport | None = None):
    """Validation vs test accuracy on MNIST-1D with near-duplicate leakage and a covariate shift in validation,
    and the checks of the ordered checklist that fire. Returns ``(figure, numbers)``.

    Both faults touch only validation, so ``run`` (the healthy pipeline's training run for this seed)
    can be reused instead of training again."""
    check_float("leak_fraction", leak_fraction, 0.0, 0.5)
    check_float("shift_size", shift_size, 0.0, 2.0)
    check_int("steps", steps, 20, 10_000)
    data = data_faults.shift_validation(datasets.mnist1d(seed=seed), shift_size, seed)   # a noisier sensor, then
    pipeline = classifier("MNIST-1D", data_faults.leak_near_duplicates(data, leak_fraction, seed=seed), seed)  # copies
    report = diagnose(pipeline, steps, progress=progress, run=run)
    test = report.extras["test_accuracy"]
    validation = report.extras["val_accuracy"]
    fired = [f.rule.check for f in report.findings if f.passed is False]
    fig, (accuracy_ax, checks_ax) = plotting.figure("Does validation tell the truth?", "split", "accuracy", ncols=2)
    accuracy_ax.bar(["validation", "test (untouched)"], [validation, test], color=plotting.PALETTE[:2])
    accuracy_ax.axhline(0.1, color="black", ls=":", lw=1, label="chance")
    accuracy_ax.set_ylim(0, 1)
    accuracy_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    audits = {"near-duplicate share": ("near_duplicates", report.value("near_duplicates")),
              "adversarial AUC - 0.5": ("adversarial_auc", report.value("adversarial_auc") - 0.5)}
    checks_ax.bar(list(audits), [value for _, value in audits.values()], color=plotting.PALETTE[2:4])
    limits = [THRESHOLDS["near_duplicates"], THRESHOLDS["adversarial_auc"] - 0.5]
    checks_ax.scatter(list(audits), limits, marker="_", s=900, color="black", zorder=3, label="healthy limit")
    checks_ax.set_xlabel("split audit")
    checks_ax.set_ylabel("value (above the limit: the check fires)")
    checks_ax.set_ylim(0, 0.55)
    checks_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    first = report.first_failure()
    numbers = {"validation accuracy": validation, "test accuracy": test, "validation - test": validation - test,
               "near-duplicate share": report.value("near_duplicates"),
               "adversarial AUC": report.value("adversarial_auc"),
               "first failing check": "none" if first is None else f"step {first.rule.step} "
                                                                     f"({STEPS[first.rule.step]}): {first.rule.check}"}
    if fired:
        numbers["note"] = f"{len(fired)} check(s) fired: " + "; ".join(fired) + "."
    return fig, numbers


@dataclass
class Drift:
    """Validation and future accuracy of a model chosen with a random split and with a time-based split."""

    random_val: float
    random_future: float
    time_val: float
    time_future: float
    bucket_centres: list[float]
    bucket_accuracy: list[float]    # accuracy of the random-split model by time bucket (validation, then future)
    time_bucket_centres: list[float]
    time_bucket_accuracy: list[float]  # the same for the time-split model (latest past, then future)


def accuracy_by_time(correct: np.ndarray, times: np.ndarray, buckets: int) -> tuple[list[float], list[float]]:
    """Centres of the non-empty time buckets of [0, 1) and the mean of ``correct`` in each."""
    edges = np.linspace(0.0, 1.0, buckets + 1)
    centres, accuracy = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (times >= low) & (times < high)
        if inside.any():
            centres.append(float((low + high) / 2))
            accuracy.append(float(correct[inside].mean()))
    return centres, accuracy


def time_drift(seed: int = 0, drift: float = 1.0, steps: int = 200, buckets: int = 10) -> Drift:
    """MNIST-1D whose sensor gets noisier over time (noise ``drift * t`` at time t in [0, 1)).

    The last 20% of time is the future. The past is split at random (train and validation mixed in
    time) or by time (validation = the latest past); both models train for ``steps`` on equal sizes.
    """
    check_float("drift", drift, 0.0, 10.0)
    check_int("buckets", buckets, 2, 100)
    base = datasets.mnist1d(seed=seed)
    x, y = torch.cat([base.x_train, base.x_val]), torch.cat([base.y_train, base.y_val])
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    x, y = x[order], y[order]
    time = torch.arange(len(y), device=y.device) / len(y)                          # (N,) in [0, 1)
    x = x + drift * time[:, None] * data_faults.noisier_sensor(torch.zeros_like(x), 1.0, seed + 1)
    past = int((time < 0.8).sum())
    cut = int(0.75 * past)
    shuffled = torch.randperm(past, generator=torch.Generator().manual_seed(seed + 2)).to(y.device)
    future = torch.arange(past, len(y), device=y.device)
    results = {}
    for split, (fit_rows, val_rows) in {"random": (shuffled[:cut], shuffled[cut:]),
                                        "time": (torch.arange(cut), torch.arange(cut, past))}.items():
        val_rows = val_rows.to(y.device)
        data = replace(base, x_train=x[fit_rows], y_train=y[fit_rows], x_val=x[val_rows], y_val=y[val_rows],
                       x_test=x[past:], y_test=y[past:])
        pipeline = classifier(f"{split} split", data, seed)
        run = train(pipeline, steps)
        held = torch.cat([val_rows, future])                                     # its validation, then the future
        correct = (pipeline.predict(run.model, x[held]).argmax(-1) == y[held]).float().cpu().numpy()
        results[split] = (run.val_acc[-1], evaluate(pipeline, run.model, data.x_test, data.y_test)[1],
                          *accuracy_by_time(correct, time[held].cpu().numpy(), buckets))
    return Drift(*results["random"][:2], *results["time"][:2], *results["random"][2:], *results["time"][2:])


def drift_figure(drift: Drift):
    """Accuracy by time bucket of both models, with each split's validation estimate and its future accuracy."""
    fig, ax = plotting.figure("A sensor that drifts: accuracy by time", "time (fraction of the record)",
                              "accuracy (fraction correct)")
    models = {"random split": (drift.bucket_centres, drift.bucket_accuracy, drift.random_val, drift.random_future),
              "time split": (drift.time_bucket_centres, drift.time_bucket_accuracy, drift.time_val, drift.time_future)}
    ax.axvspan(0.8, 1.0, color="grey", alpha=0.15, label="the future (never trained on)")
    for colour, (name, (centres, accuracy, validation, future)) in zip(plotting.PALETTE[1:], models.items()):
        ax.plot(centres, accuracy, marker="o", color=colour, label=f"{name} model, per time bucket")
        ax.axhline(validation, color=colour, ls="--", lw=1, label=f"{name}: validation estimate {validation:.2f}")
        ax.plot([0.8, 1.0], [future, future], color=colour, lw=3, label=f"{name}: future accuracy {future:.2f}")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def recall_figure(recalls: dict[str, list[float]], highlight: int, highlight_label: str, xlabel: str = "class"):
    """Per-class validation recall for each named run: the segment view that an overall accuracy hides."""
    fig, ax = plotting.figure("Recall by segment: where the aggregate hides a failure", xlabel,
                              "recall (share of the segment found)")
    width = 0.8 / len(recalls)
    for i, (name, values) in enumerate(recalls.items()):
        positions = np.arange(len(values)) + (i - (len(recalls) - 1) / 2) * width
        ax.bar(positions, np.nan_to_num(values), width, label=name)
        for position, value in zip(positions, np.nan_to_num(values)):
            if value < 0.02:                                   # a bar of zero height: say so
                ax.text(position, 0.01, "0", ha="center", va="bottom", fontsize=9, fontweight="bold")
    ax.axvspan(highlight - 0.45, highlight + 0.45, color="grey", alpha=0.15, label=highlight_label)
    ax.set_xticks(range(len(next(iter(recalls.values())))))
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
