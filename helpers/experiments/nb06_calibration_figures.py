"""Notebook 06 (calibration): figures and the two explorers.

Reliability diagrams take (confidence, outcome) pairs, as ``helpers.scratch.calibration`` measures them:
each bar is shaded by how many forecasts its bin holds and labelled with that count, so a bin of three
examples does not look as important as a bin of three hundred.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import to_rgba

from helpers import metrics
from helpers.plotting import PALETTE, figure
from helpers.scratch import calibration as scratch
from helpers.validation import check_choice, check_float, check_int

Pair = tuple[torch.Tensor, torch.Tensor]
CONFIDENCE = "confidence (top-class probability)"
ACCURACY = "accuracy (fraction correct)"
EXPLORER_BINS = range(5, 31)


def _legend_below(fig, ax, columns: int = 3) -> None:
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns, fontsize=8)


def _bin_edges(confidence: torch.Tensor, n_bins: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edge of each bin: fixed for equal-width, the bin's smallest and largest value for equal-mass."""
    if scheme == "equal-width":
        return np.arange(n_bins) / n_bins, np.arange(1, n_bins + 1) / n_bins
    values = confidence.double().cpu().numpy()
    bin_of = scratch.bin_indices(confidence, n_bins, scheme).cpu().numpy()
    low = np.array([values[bin_of == m].min() if (bin_of == m).any() else np.nan for m in range(n_bins)])
    high = np.array([values[bin_of == m].max() if (bin_of == m).any() else np.nan for m in range(n_bins)])
    return low, np.maximum(high, low + 0.004)


def _draw_bins(ax, low, high, count, mean_confidence, frequency, label_counts: bool) -> None:
    """Bars of each bin's accuracy and the gap lines to the diagonal, both shaded by the bin's share of the
    examples (a bin of three examples stays faint), with the counts written over the bars if asked."""
    full = count > 0
    weight = count[full] / count.max()
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    ax.bar(low[full], frequency[full], (high - low)[full], align="edge", edgecolor="white",
           color=[to_rgba(PALETTE[0], 0.15 + 0.85 * w) for w in weight],
           label="accuracy in bin (darker = more examples)")
    if label_counts:
        for m in np.flatnonzero(full):
            ax.text((low[m] + high[m]) / 2, max(frequency[m], mean_confidence[m]) + 0.015, f"{int(count[m])}",
                    ha="center", fontsize=6, color="#333333")
    ax.vlines(mean_confidence[full], np.minimum(frequency, mean_confidence)[full],
              np.maximum(frequency, mean_confidence)[full], lw=2,
              label="gap to the diagonal (fainter = fewer examples)",
              colors=[to_rgba(PALETTE[1], 0.2 + 0.8 * w) for w in weight])
    ax.plot(mean_confidence[full], frequency[full], "o", color="black", ms=3, label="bin (mean confidence, accuracy)")


def draw_reliability(ax, confidence: torch.Tensor, outcome: torch.Tensor, title: str, n_bins: int = 15,
                     scheme: str = "equal-width") -> float:
    """One reliability diagram on ``ax``; returns the ECE shown in its title."""
    bins = scratch.reliability_bins(confidence, outcome, n_bins, scheme)
    count, mean_confidence, frequency = (t.cpu().numpy() for t in (bins.count, bins.confidence, bins.frequency))
    ece = scratch.calibration_error(confidence, outcome, n_bins, scheme)
    _draw_bins(ax, *_bin_edges(confidence, n_bins, scheme), count, mean_confidence, frequency,
               label_counts=scheme == "equal-width")                         # equal-mass bins all hold n / M
    per_bin = f"about {len(outcome) // n_bins} examples per bin"
    counts = per_bin if scheme == "equal-mass" else "numbers: examples per bin"
    ax.set(xlim=(0, 1), ylim=(0, 1.06), title=f"{title}\nECE = {ece:.3f} · {counts}")
    return ece


def draw_reliability_at_values(ax, confidence: torch.Tensor, outcome: torch.Tensor, title: str) -> float:
    """A reliability diagram of a forecaster with few distinct outputs (histogram binning), one bar per output
    value rather than re-binned; returns the calibration error over those groups, shown in the title."""
    scratch.check_forecasts(confidence, outcome)
    values, group = torch.unique(confidence.double().cpu(), return_inverse=True)   # (V,), (n,)
    if len(values) > 50:
        raise ValueError(f"confidence must take at most 50 distinct values to be drawn per value, got {len(values)}")
    count = torch.bincount(group, minlength=len(values)).double().numpy()
    frequency = torch.bincount(group, outcome.double().cpu(), minlength=len(values)).numpy() / count
    values = values.numpy()
    _draw_bins(ax, values - 0.015, values + 0.015, count, values, frequency, label_counts=True)
    ece = float((count * np.abs(frequency - values)).sum() / count.sum())
    ax.set(xlim=(0, 1), ylim=(0, 1.06),
           title=f"{title}\none bar per output value ({len(values)}) · error over them = {ece:.3f}")
    return ece


def reliability_diagrams(panels: Mapping[str, Pair], title: str, n_bins: int = 15, scheme: str = "equal-width",
                         at_own_values: Sequence[str] = ()):
    """Side-by-side reliability diagrams, one per named (confidence, outcome) pair; the panels named in
    ``at_own_values`` (forecasters with a few distinct outputs) get one bar per output value."""
    if not 1 <= len(panels) <= 4:
        raise ValueError(f"panels must hold 1 to 4 (confidence, outcome) pairs, got {len(panels)}")
    check_choice("scheme", scheme, scratch.SCHEMES)
    for name in at_own_values:
        check_choice("at_own_values", name, list(panels))
    fig, axes = figure(title, CONFIDENCE, ACCURACY, ncols=len(panels), figsize=(4.3 * len(panels) + 0.6, 4.4))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, (name, (confidence, outcome)) in zip(axes, panels.items()):
        if name in at_own_values:
            draw_reliability_at_values(ax, confidence, outcome, name)
        else:
            draw_reliability(ax, confidence, outcome, name, n_bins, scheme)
    _legend_below(fig, axes[0], columns=4 if len(panels) > 1 else 2)
    return fig


def confidence_histogram(confidence: torch.Tensor, correct: torch.Tensor, title: str, n_bins: int = 20):
    """Right and wrong predictions stacked by confidence, with the accuracy and the mean confidence marked."""
    scratch.check_forecasts(confidence, correct)
    check_int("n_bins", n_bins, 2, 200)
    values, right = confidence.double().cpu().numpy(), correct.cpu().numpy().astype(bool)
    fig, ax = figure(title, CONFIDENCE, "examples (fraction of all)", figsize=(6.4, 4.0))
    weights = np.full(len(values), 1 / len(values))
    ax.hist([values[right], values[~right]], np.linspace(0, 1, n_bins + 1), weights=[weights[right], weights[~right]],
            stacked=True, color=[PALETTE[0], PALETTE[1]], label=["correct", "wrong"])
    ax.axvline(right.mean(), color="black", ls="--", lw=1.2, label=f"accuracy {right.mean():.2f}")
    ax.axvline(values.mean(), color=PALETTE[3], lw=1.6, label=f"mean confidence {values.mean():.2f}")
    _legend_below(fig, ax, columns=4)
    return fig


def epoch_curves(record: Mapping[str, Sequence[float]], title: str = "Over-fitting shows in probabilities first"):
    """Validation NLL and error (left), ECE, mean confidence and accuracy (right) per epoch, NLL's minimum marked."""
    for key in ("error", "nll", "ece", "confidence"):
        if not record.get(key):
            raise ValueError(f"record must hold a non-empty list under {key!r} (from CalibrationTracker)")
    epochs = np.arange(len(record["nll"]))
    best = int(np.argmin(record["nll"]))
    fig, (left, right) = figure(title, "epoch (0 = before training)", "validation NLL (nats)", ncols=2,
                                figsize=(10, 4.2))
    left.plot(epochs, record["nll"], color=PALETTE[1], label="validation NLL (left panel)")
    twin = left.twinx()
    twin.plot(epochs, record["error"], color=PALETTE[0], label="validation error (left panel, right axis)")
    twin.set(ylabel="validation error (fraction wrong)", ylim=(0, 1))
    twin.grid(False)
    right.plot(epochs, record["ece"], color=PALETTE[2], label="validation ECE")
    right.plot(epochs, record["confidence"], color=PALETTE[3], ls="--", label="mean confidence")
    right.plot(epochs, 1 - np.asarray(record["error"]), color=PALETTE[0], ls=":", label="accuracy")
    right.set(ylabel="ECE, confidence, accuracy (fraction)", ylim=(0, 1))
    for ax in (left, right):
        ax.axvline(best, color="gray", ls=":", lw=1)
    left.plot([], [], color="gray", ls=":", lw=1, label=f"NLL minimum (epoch {best})")
    handles = [h for ax in (left, twin, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=3, fontsize=8)
    return fig


def nll_temperature_plot(val: Pair, test: Pair, temperatures: Sequence[float], fitted: float):
    """NLL of softmax(logits / T) against T on validation (where T is fitted) and test, fitted T marked."""
    fig, ax = figure("Temperature scaling minimises validation NLL", "temperature T (log scale)", "NLL (nats)",
                     figsize=(6.4, 4.0))
    for (logits, labels), name, style in ((val, "validation (T fitted here)", "-"), (test, "test (untouched)", "--")):
        ax.plot(temperatures, [metrics.nll(logits.double() / t, labels) for t in temperatures], ls=style, label=name)
    ax.axvline(fitted, color="black", ls=":", label=f"fitted T = {fitted:.2f}")
    ax.axvline(1.0, color="gray", lw=1, label="T = 1 (as trained)")
    ax.set_xscale("log")
    _legend_below(fig, ax, columns=2)
    return fig


def sweep_bars(results: Mapping[str, object], title: str, n_bins: int = 15, n_draws: int = 200, seed: int = 0):
    """Left: test ECE as trained and after temperature scaling, each scaled model's noise floor marked (the
    95th percentile of the ECE that perfectly calibrated forecasts with its confidences show). Right: test NLL."""
    if not results:
        raise ValueError("results must hold at least one model")
    names = list(results)
    x = np.arange(len(names))
    fig, (left, right) = figure(title, "model", "test ECE (fraction)", ncols=2,
                                figsize=(max(9.0, 2.4 * len(names)), 4.6))
    for ax, key in ((left, "ece"), (right, "nll")):
        ax.bar(x - 0.2, [results[n].before[key] for n in names], 0.4, color=PALETTE[1], label="as trained")
        ax.bar(x + 0.2, [results[n].after[key] for n in names], 0.4, color=PALETTE[0],
               label="after temperature scaling")
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.3 * max(results[n].before[key] for n in names))
    for xi, name in zip(x, names):
        run = results[name]
        confidence = (run.test_logits.double() / run.temperature).softmax(-1).max(-1).values
        floor = float(scratch.resampled_errors(confidence, n_draws, n_bins, seed=seed).quantile(0.95))
        left.plot([xi, xi + 0.4], [floor] * 2, color="black", lw=2,
                  label="noise floor of the scaled model" if xi == 0 else None)
        left.text(xi, run.before["ece"] + 0.005, f"acc {run.before['accuracy']:.2f}\nT {run.temperature:.2f}",
                  ha="center", fontsize=7)
    left.set_title("ECE (black: 95% of what a calibrated model would show)", fontsize=9)
    right.set(ylabel="test NLL (nats)")
    right.set_title("NLL (a proper score: needs no bins)", fontsize=9)
    _legend_below(fig, left, columns=3)
    return fig


def coverage_plot(curves: Mapping[str, Mapping[str, np.ndarray]], title: str, mark: float | None = None):
    """Left: accuracy of the cases acted on against their mean confidence (calibrated = on the diagonal).
    Right: the same accuracy against coverage, the ranking view that temperature scaling barely moves."""
    fig, (left, right) = figure(title, "mean confidence of the cases acted on", ACCURACY, ncols=2, figsize=(10, 4.2))
    for color, (name, c) in zip(PALETTE, curves.items()):
        left.plot(c["confidence"], c["accuracy"], "o-", ms=3, color=color, label=name)
        right.plot(c["coverage"], c["accuracy"], "o-", ms=3, color=color)
        if mark is not None:
            i = int(np.argmin(np.abs(c["threshold"] - mark)))
            left.plot(c["confidence"][i], c["accuracy"][i], "s", ms=9, mfc="none", color="black")
            right.plot(c["coverage"][i], c["accuracy"][i], "s", ms=9, mfc="none", color="black")
    left.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="accuracy = mean confidence")
    if mark is not None:
        left.plot([], [], "s", ms=9, mfc="none", color="black", label=f"threshold t = {mark:g}")
    left.set(xlim=(0, 1.02), ylim=(0, 1.02), title="Does the stated confidence hold on the cases acted on?")
    right.set(xlabel="coverage (fraction of cases acted on)", xlim=(0, 1.02), ylim=(0, 1.02),
              title="Ranking view: accuracy against coverage")
    _legend_below(fig, left, columns=4)
    return fig


def shift_plot(rows: Sequence[Mapping[str, float]], title: str = "Calibration under input noise"):
    """Test ECE against noise strength as trained, with the clean temperature and with a refitted one."""
    noise = [row["noise"] for row in rows]
    fig, ax = figure(title, "noise added to the inputs (standard deviations)", "test ECE (fraction)",
                     figsize=(6.4, 4.2))
    for key, color in (("ECE as trained", PALETTE[1]), ("ECE, T from clean validation", PALETTE[0]),
                       ("ECE, T refitted on shifted validation", PALETTE[2])):
        ax.plot(noise, [row[key] for row in rows], "o-", color=color, label=key)
    for row in rows:
        ax.annotate(f"acc {row['accuracy']:.2f}", (row["noise"], row["ECE as trained"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.set_ylim(0, 1.2 * max(row["ECE as trained"] for row in rows) + 0.02)
    _legend_below(fig, ax, columns=2)
    return fig


def noise_floor_plot(floor: Mapping[str, np.ndarray], title: str = "ECE of a perfectly calibrated predictor"):
    """Measured ECE (mean and spread over repeats) against the number of examples, log-log."""
    fig, ax = figure(title, "examples (count)", "measured ECE (fraction)", figsize=(6.4, 4.0))
    ax.errorbar(floor["n"], floor["mean"], yerr=floor["std"], fmt="o-", capsize=3, label="measured ECE (mean ± sd)")
    ax.plot(floor["n"], floor["mean"][0] * np.sqrt(floor["n"][0] / floor["n"]), ls="--", color="gray",
            label="1/sqrt(n) reference")
    ax.set(xscale="log", yscale="log")
    _legend_below(fig, ax, columns=2)
    return fig


# ----------------------------------------------------------------------------- explorers
def explore_temperature(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, n_bins: int = 15):
    """Explorer: the reliability diagram and the numbers of softmax(logits / T) for one temperature."""
    check_float("temperature", temperature, 0.2, 10.0)
    check_int("n_bins", n_bins, 5, 30)
    probs = (logits.detach().double() / temperature).softmax(-1)
    confidence, correct = scratch.top_label(probs, labels)
    fig, ax = figure("Reliability diagram (test set)", CONFIDENCE, ACCURACY, figsize=(5.6, 4.6))
    ece = draw_reliability(ax, confidence, correct, f"temperature T = {temperature:.3g}", n_bins)
    _legend_below(fig, ax, columns=2)
    accuracy, gap = float(correct.mean()), float(confidence.mean() - correct.mean())
    noise = 2 * (max(accuracy * (1 - accuracy), 0.01) / len(correct)) ** 0.5   # two standard errors of accuracy
    numbers = {"temperature T": round(temperature, 4), "accuracy": accuracy,
               "mean confidence": float(confidence.mean()), f"ECE ({n_bins} bins)": ece,
               "NLL (nats)": metrics.nll(logits.double() / temperature, labels),
               "on average": "over-confident" if gap > noise else "under-confident" if gap < -noise
               else "confidence matches accuracy within noise"}
    return fig, numbers


def binning_curves(confidence: torch.Tensor, correct: torch.Tensor, scheme: str = "equal-width", n_draws: int = 100,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """ECE for every bin count of the explorer, beside the ECE of outcomes resampled from the same confidences
    (perfectly calibrated by construction): their mean and 5th-95th percentile band per bin count."""
    check_choice("scheme", scheme, scratch.SCHEMES)
    null = np.array([scratch.resampled_errors(confidence, n_draws, m, scheme, seed).numpy()
                     for m in EXPLORER_BINS])                               # (bin counts, draws)
    model = [scratch.calibration_error(confidence, correct, m, scheme) for m in EXPLORER_BINS]
    return {"bins": np.array(EXPLORER_BINS), "model": np.array(model),
            "calibrated mean": null.mean(1), "calibrated low": np.quantile(null, 0.05, 1),
            "calibrated high": np.quantile(null, 0.95, 1)}


def explore_bins(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15, scheme: str = "equal-width",
                 curves_by_scheme: Mapping[str, dict] | None = None):
    """Explorer: the ECE estimate against the number and placement of bins, beside the band that perfectly
    calibrated forecasts with the same confidences fill (outcomes resampled from them), and the lower bound
    |mean confidence - accuracy| (reached when every bin errs in the same direction). ``curves_by_scheme``
    passes :func:`binning_curves` already computed for these forecasts (they do not depend on ``n_bins``)."""
    check_int("n_bins", n_bins, EXPLORER_BINS[0], EXPLORER_BINS[-1])
    check_choice("scheme", scheme, scratch.SCHEMES)
    curves = (curves_by_scheme or {}).get(scheme) or binning_curves(confidence, correct, scheme)
    at = n_bins - EXPLORER_BINS[0]
    bound = abs(float(confidence.double().mean() - correct.mean()))
    fig, (left, right) = figure(f"ECE estimate with {n_bins} {scheme} bins", CONFIDENCE, ACCURACY, ncols=2,
                                figsize=(7.2, 4.9))
    ece = draw_reliability(left, confidence, correct, f"{n_bins} {scheme} bins", n_bins, scheme)
    right.fill_between(curves["bins"], curves["calibrated low"], curves["calibrated high"], color="gray", alpha=0.3,
                       label="calibrated by construction: 90% band")
    right.plot(curves["bins"], curves["calibrated mean"], ls=":", color="gray", label="calibrated: mean")
    right.plot(curves["bins"], curves["model"], "o-", ms=3, color=PALETTE[0], label="this model")
    right.axhline(bound, color="black", ls="--", lw=1, label="|mean confidence - accuracy|")
    right.plot([n_bins], [ece], "s", ms=9, mfc="none", color="black", label="current setting")
    right.set(xlabel="number of bins", ylabel="ECE (fraction)", title="ECE against the bin count",
              ylim=(0, max(0.1, 1.25 * max(curves["model"].max(), curves["calibrated high"].max()))))
    left.set_title(left.get_title().replace(" · ", "\n"), fontsize=9)
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=3, fontsize=7)
    numbers = {"bins": n_bins, "binning scheme": scheme, "ECE": ece,
               "ECE if calibrated (mean of resampled outcomes)": float(curves["calibrated mean"][at]),
               "lower bound |mean confidence - accuracy|": bound,
               f"ECE range over {EXPLORER_BINS[0]}-{EXPLORER_BINS[-1]} bins":
                   f"{curves['model'].min():.4f} to {curves['model'].max():.4f}"}
    return fig, numbers
