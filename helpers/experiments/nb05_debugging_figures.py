"""Notebook 05, reading the gallery: the pass/fail heatmap, the measured table, and the learning-rate and
class-weight figures, all drawn from the reports that :func:`helpers.scratch.diagnose.diagnose` returned."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.colors import ListedColormap

from helpers import plotting
from helpers.scratch.diagnose import RULES, Report
from helpers.scratch.pipeline import EARLY_STEPS

SHORT = {"label_gain": "1-NN label agreement", "init_loss": "loss at init", "confident_loss": "perfect-prediction loss",
         "weight_spread": "per-example weight spread", "update_ratio": "update / weight",
         "non_finite": "non-finite steps", "no_gradient": "tensors without gradient",
         "repeat_ratio": "repeated lr-0 step", "batch_leak": "batch leak", "eval_layers": "mode in training",
         "prediction_change": "predict twice", "unchanged": "tensors that never move",
         "overfit_loss": "overfit one batch", "baseline_gain": "beats input-free baseline", "input_rms": "input scale",
         "val_shift": "validation scale", "padding_change": "padding invariance", "near_duplicates": "near-duplicates",
         "adversarial_auc": "adversarial AUC", "class_balance": "class balance", "worst_recall": "worst class recall"}
RATIO_FLOOR = 1e-8   # update ratios below this are drawn on it: the weights have stopped moving
VERDICT_COLOURS = ListedColormap(["#e6e6e6", "#b9e3c6", "#f4b183", "#b2182b"])  # n/a, pass, fail, first failure


def verdict_matrix(reports: Mapping[str, Report]) -> np.ndarray:
    """Rows = reports, columns = rules: 0 does not apply, 1 pass, 2 fail, 3 the first failure."""
    matrix = np.zeros((len(reports), len(RULES)))
    for row, report in enumerate(reports.values()):
        first = report.first_failure()
        for column, finding in enumerate(report.findings):
            matrix[row, column] = {None: 0, True: 1, False: 2}[finding.passed] + (finding is first)
    return matrix


def heatmap(reports: Mapping[str, Report], expected: Mapping[str, int]):
    """Every check (columns, in checklist order) on every pipeline (rows): where the checklist stops."""
    matrix = verdict_matrix(reports)
    fig, ax = plotting.figure("The ordered checklist on every planted bug", "check (grouped by checklist step)",
                              "pipeline (the step that should catch it)", figsize=(11, 8.5))
    ax.grid(False)
    ax.imshow(matrix, cmap=VERDICT_COLOURS, vmin=-0.5, vmax=3.5, aspect="auto")
    ax.set_xticks(range(len(RULES)), [f"{rule.step}. {SHORT[rule.key]}" for rule in RULES], rotation=60, ha="right")
    ax.set_yticks(range(len(reports)), [f"{name}  ({expected[name]})" if name in expected else name
                                        for name in reports])
    for row, column in zip(*np.nonzero(matrix == 3)):
        ax.text(column, row, "X", ha="center", va="center", color="white", fontsize=9, fontweight="bold")
    steps = [rule.step for rule in RULES]
    for column in range(1, len(steps)):
        if steps[column] != steps[column - 1]:
            ax.axvline(column - 0.5, color="black", lw=0.8)
    legend = [("#e6e6e6", "does not apply"), ("#b9e3c6", "pass"), ("#f4b183", "fail"), ("#b2182b", "first failure (X)")]
    for colour, label in legend:
        ax.bar(0, 0, color=colour, label=label)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def measured_rows(reports: Mapping[str, Report], parts: Mapping[str, str], expected: Mapping[str, int]) -> list[dict]:
    """One table row per pipeline: where the bug lives, which check stopped the checklist, and accuracy."""
    rows = []
    for name, report in reports.items():
        first = report.first_failure()
        rows.append({"pipeline": name, "part": parts.get(name, "—"), "expected step": expected.get(name, "—"),
                     "first failure": "none" if first is None else f"{first.rule.step}. {SHORT[first.rule.key]}",
                     "value": "—" if first is None else first.value,
                     "healthy range": "—" if first is None else first.rule.text(),
                     "validation accuracy": report.extras["val_accuracy"]})
    return rows


def learning_rate_figure(reports: Mapping[str, Report], n_classes: int, band: tuple[float, float]):
    """Training loss and update-to-weight ratio per step for several learning rates."""
    fig, (loss_ax, ratio_ax) = plotting.figure("Learning rate: loss and the size of each update",
                                               "training step (log scale)", "training loss (nats, log scale)", ncols=2)
    for name, report in reports.items():
        steps = np.arange(1, len(report.run.losses) + 1)
        loss_ax.plot(steps, np.clip(report.run.losses, None, 50), lw=1, label=name)
        ratio_ax.plot(steps, np.clip(report.run.update_ratios, RATIO_FLOOR, None), lw=1, label=name)
    loss_ax.axhline(math.log(n_classes), color="black", ls=":", lw=1, label="ln C")
    ratio_ax.fill_between([1, EARLY_STEPS], *band, color="grey", alpha=0.2,
                          label=f"healthy range (first {EARLY_STEPS} steps)")
    ratio_ax.axhline(RATIO_FLOOR, color="black", ls=":", lw=1,
                     label=f"drawn at {RATIO_FLOOR:g}: smaller (no gradient, dead units)")
    ratio_ax.set_ylim(RATIO_FLOOR / 3, None)
    for ax in (loss_ax, ratio_ax):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ratio_ax.set_ylabel("update-to-weight ratio |ΔW| / |W|")
    ratio_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def gradient_figure(reports: Mapping[str, Report]):
    """Total gradient norm per training step, one panel per named run on a shared log scale."""
    fig, axes = plotting.figure("Gradient norm per training step", "training step", "gradient norm (log scale)",
                                ncols=len(reports))
    axes = list(axes) if len(reports) > 1 else [axes]
    for ax, (colour, (name, report)) in zip(axes, zip(plotting.PALETTE, reports.items())):
        norms = np.array(report.run.grad_norms)
        ax.plot(np.arange(1, len(norms) + 1), norms, lw=1, color=colour)
        ax.axhline(np.median(norms), color="black", ls=":", lw=1)
        ax.set_title(f"{name}\nmax / median {report.extras['grad_spike']:.1f}", fontsize=9)
        ax.set_yscale("log")
    low = min(ax.get_ylim()[0] for ax in axes)
    high = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(low, high)
    axes[-1].plot([], [], color="black", ls=":", lw=1, label="median")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def spoken_checklist(reports: Mapping[str, Report]) -> str:
    """The interview answer in checklist order: the numbers measured in this run and a rule for each (Markdown)."""
    def value(name: str, key: str, digits: int = 2) -> str:
        text = f"{reports[name].value(key):.{digits}f}"
        return text.lstrip("-") if text.strip("-0.") == "" else text   # never "-0.00"

    def extra(name: str, key: str):
        return reports[name].extras[key]

    healthy = "healthy MNIST-1D"
    update = {name: reports[name].value("update_ratio") for name in (healthy, "learning rate x100",
                                                                      "learning rate /1000")}
    return "\n".join([
        "**\"Training loss is not decreasing. What do you check?\" In this order:**", "",
        "0. **Look at a batch** as the model receives it, after the loader and augmentation: inputs, labels, "
        "shapes, value ranges, shuffling. Most bugs are visible here before any check runs.",
        f"1. **Data and labels.** Do labels belong to inputs? Nearest neighbours agree beyond the majority class "
        f"by {value(healthy, 'label_gain')} on clean data, {value('shuffled labels', 'label_gain')} with "
        f"shuffled labels — which still overfit one batch. Rule: near 0 means the labels are noise.",
        f"2. **Loss and masking.** Init at ln C ({value(healthy, 'init_loss')} x ln 10 here; outside about "
        f"0.85–1.2 x ln C, look at the logits' scale and the reduction); a perfect prediction costs 0 "
        f"(softmax before cross-entropy: {value('softmax before cross-entropy', 'confident_loss')} nats); "
        f"class weights within 10x ({reports['exploding class weights'].value('weight_spread'):.0f}x for a "
        f"class of 3); appended padding leaves the loss unchanged "
        f"({reports['pads counted in the loss'].value('padding_change'):.1%} when pads counted).",
        f"3. **Learning rate.** Update-to-weight ratio in the first steps: {update[healthy]:.3f} healthy, "
        f"{update['learning rate x100']:.1f} at 100x, {update['learning rate /1000']:.0e} at 1/1000. Rule: about "
        f"1e-3 to 1e-1 is typical; near or above 1 diverges; below 1e-4 barely moves.",
        f"4. **Gradients.** Finite, reaching every tensor, not piling up (a repeated step at rate 0 gave "
        f"{value('missing zero_grad', 'repeat_ratio', 1)}x the gradient without `zero_grad`; it must be 1), not "
        f"leaking across the batch ({reports['reshape mixes the batch'].value('batch_leak'):.0%} did after a bad "
        f"reshape; it must be 0).",
        f"5. **Model mode.** Record the mode inside the training step "
        f"({reports['eval mode in training'].value('eval_layers'):.0f} layers in eval mode in the buggy loop); "
        f"predict twice (must agree); check every tensor moves "
        f"({reports['first layer frozen'].value('unchanged'):.0%} never did when frozen).",
        f"6. **Simplify.** Overfit one batch to near 0; beat an input-free baseline (by "
        f"{value(healthy, 'baseline_gain')} here).",
        f"7. **Preprocessing.** Input scale (RMS {reports['unscaled 0-255 pixels'].value('input_rms'):.0f} for raw "
        f"pixels; aim for about 1), validation preprocessed like training "
        f"({value('raw validation inputs', 'val_shift', 1)} SD off when not; more than 1 is a mismatch).",
        "",
        f"**\"Validation gets worse\":** overfitting is the first suspect (the gap grows with training; "
        f"regularize), confirmed once the split passes both audits — near-duplicates "
        f"({reports['near-duplicate leak'].value('near_duplicates'):.0%} of validation were copies) and adversarial "
        f"validation (AUC {value('covariate shift', 'adversarial_auc')} under a shift; above about 0.7 the splits "
        f"differ) — then look by segment: a starved class had recall "
        f"{extra('starved class', 'recalls')[0]:.2f} at {extra('starved class', 'val_accuracy'):.2f} overall accuracy.",
    ])
