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
        ratio_ax.plot(steps, report.run.update_ratios, lw=1, label=name)
    loss_ax.axhline(math.log(n_classes), color="black", ls=":", lw=1, label="ln C")
    ratio_ax.fill_between([1, EARLY_STEPS], *band, color="grey", alpha=0.2,
                          label=f"healthy range (first {EARLY_STEPS} steps)")
    for ax in (loss_ax, ratio_ax):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ratio_ax.set_ylabel("update-to-weight ratio |ΔW| / |W|")
    ratio_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def gradient_figure(reports: Mapping[str, Report]):
    """Total gradient norm per training step for each named run (log scale); the first run is drawn on top."""
    fig, ax = plotting.figure("Gradient norm per training step", "training step", "gradient norm (log scale)")
    for order, (name, report) in enumerate(reports.items()):
        ax.plot(np.arange(1, len(report.run.grad_norms) + 1), report.run.grad_norms, lw=1, label=name,
                zorder=len(reports) - order, alpha=1.0 if order == 0 else 0.7)
    ax.set_yscale("log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def spoken_checklist(reports: Mapping[str, Report]) -> str:
    """The interview answer, in checklist order, with the numbers measured in this run (Markdown)."""
    def value(name: str, key: str) -> float:
        return reports[name].value(key) + 0.0             # + 0.0 turns a -0.0 into 0.0

    def extra(name: str, key: str):
        return reports[name].extras[key]

    healthy = "healthy MNIST-1D"
    return "\n".join([
        "**\"Training loss is not decreasing. What do you check?\" In this order:**", "",
        f"1. **Data and labels.** Do labels belong to inputs? Nearest neighbours agree beyond the majority class "
        f"by {value(healthy, 'label_gain'):.2f} on clean data, {value('shuffled labels', 'label_gain'):.2f} with "
        f"shuffled labels — which still overfit one batch.",
        f"2. **Loss.** Init at ln C ({value(healthy, 'init_loss'):.2f} x ln 10 here); a perfect prediction costs 0 "
        f"(softmax before cross-entropy: {value('softmax before cross-entropy', 'confident_loss'):.2f} nats); "
        f"class weights within 10x ({value('exploding class weights', 'weight_spread'):.0f}x for a class of 3).",
        f"3. **Learning rate.** Update-to-weight ratio: {value(healthy, 'update_ratio'):.3f} healthy, "
        f"{value('learning rate x100', 'update_ratio'):.1f} at 100x, "
        f"{value('learning rate /1000', 'update_ratio'):.0e} at 1/1000.",
        f"4. **Gradients.** Finite, reaching every tensor, not piling up (a repeated step at rate 0 gave "
        f"{value('missing zero_grad', 'repeat_ratio'):.1f}x the gradient without `zero_grad`), not leaking across "
        f"the batch ({value('reshape mixes the batch', 'batch_leak'):.0%} did after a bad reshape).",
        f"5. **Model mode.** Record the mode inside the training step "
        f"({value('eval mode in training', 'eval_layers'):.0f} layers in eval mode in the buggy loop); predict "
        f"twice; check every tensor moves ({value('first layer frozen', 'unchanged'):.0%} never did when frozen).",
        f"6. **Simplify.** Overfit one batch; beat an input-free baseline (by {value(healthy, 'baseline_gain'):.2f}).",
        f"7. **Preprocessing.** Input scale (RMS {value('unscaled 0-255 pixels', 'input_rms'):.0f} for raw pixels), "
        f"validation preprocessed like training ({value('raw validation inputs', 'val_shift'):.1f} SD off when "
        f"not), padding invariance ({value('pads counted in the loss', 'padding_change'):.1%} when pads counted).",
        "",
        f"**\"Validation gets worse\":** audit the split both ways — near-duplicates "
        f"({value('near-duplicate leak', 'near_duplicates'):.0%} of validation were copies) and adversarial "
        f"validation (AUC {value('covariate shift', 'adversarial_auc'):.2f} under a shift) — then look by segment: "
        f"a starved class had recall {extra('starved class', 'recalls')[0]:.2f} at "
        f"{extra('starved class', 'val_accuracy'):.2f} overall accuracy.",
    ])
