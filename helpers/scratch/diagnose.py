"""The senior checklist as runnable checks: ``diagnose(pipeline)`` measures, then judges, in the guide's order.

1 data and labels, 2 loss (masking and padding included), 3 learning rate, 4 gradients,
5 model mode, 6 simplify, 7 preprocessing, 8 splits and segments. Each :class:`Rule` says what is
measured and the range a healthy pipeline stays in; the :class:`Report` lists every finding and marks
the first failure, which is where a debugging session following the checklist would stop and look.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from helpers.progress import Report as ProgressReport
from helpers.progress import share
from helpers.scratch import split_audit
from helpers.scratch import training_checks as checks
from helpers.scratch.pipeline import EARLY_STEPS, Pipeline, Run, evaluate, labelled_positions, train
from helpers.validation import check_choice, check_int

STEPS = {1: "data and labels", 2: "loss", 3: "learning rate", 4: "gradients", 5: "model mode",
         6: "simplify", 7: "preprocessing", 8: "splits and segments"}
OPS = ("<=", ">=", "between")


@dataclass(frozen=True)
class Rule:
    """One check: the step it belongs to, a key, what it measures, and the range a healthy pipeline stays in."""

    step: int
    key: str
    check: str
    op: str
    threshold: float | tuple[float, float]

    def __post_init__(self) -> None:
        check_int("step", self.step, 1, len(STEPS))
        check_choice("op", self.op, OPS)

    def judge(self, value: float | None) -> bool | None:
        """True if ``value`` is in the healthy range, False if not (nan fails), None if the check does not apply."""
        if value is None:
            return None
        if math.isnan(value):
            return False
        if self.op == "<=":
            return value <= self.threshold
        if self.op == ">=":
            return value >= self.threshold
        low, high = self.threshold
        return low <= value <= high

    def text(self) -> str:
        """The healthy range in words, e.g. ``<= 0.05`` or ``in [0.75, 1.25]``."""
        if self.op == "between":
            return f"in [{self.threshold[0]:g}, {self.threshold[1]:g}]"
        return f"{self.op} {self.threshold:g}"


RULES = (
    Rule(1, "label_gain", "1-NN label agreement minus majority share", ">=", 0.15),
    Rule(2, "init_loss", "loss at init / ln C", "between", (0.85, 1.2)),
    Rule(2, "confident_loss", "loss of a confident correct prediction", "<=", 0.05),
    Rule(2, "weight_spread", "per-example loss weight, max / median", "<=", 10.0),
    Rule(2, "padding_change", "relative loss change from appended padding", "<=", 1e-4),
    Rule(3, "update_ratio", f"largest update-to-weight ratio in {EARLY_STEPS} steps", "between", (1e-3, 0.5)),
    Rule(4, "non_finite", "steps with a non-finite loss or gradient", "<=", 0),
    Rule(4, "no_gradient", "trainable tensors left without gradient", "<=", 0),
    Rule(4, "repeat_ratio", "gradient after a repeated lr-0 step / first", "between", (0.99, 1.01)),
    Rule(4, "batch_leak", "gradient share reaching other examples", "<=", 1e-4),
    Rule(5, "eval_layers", "dropout/norm layers in eval mode while training", "<=", 0),
    Rule(5, "prediction_change", "probability change between two predictions", "<=", 1e-4),
    Rule(5, "unchanged", f"share of parameter tensors unchanged after {EARLY_STEPS} steps", "<=", 0),
    Rule(6, "overfit_loss", "loss after overfitting one batch / ln C", "<=", 0.1),
    Rule(6, "baseline_gain", "validation accuracy minus input-independent baseline", ">=", 0.1),
    Rule(7, "input_rms", "root mean square of training inputs", "between", (0.1, 10.0)),
    Rule(7, "val_shift", "validation mean shift (training SDs, median feature)", "<=", 1.0),
    Rule(8, "near_duplicates", "share of validation rows near-duplicating training", "<=", 0.02),
    Rule(8, "adversarial_auc", "adversarial validation AUC (train vs validation)", "<=", 0.7),
    Rule(8, "class_balance", "smallest class share x number of classes", ">=", 0.2),
    Rule(8, "worst_recall", "worst class recall / accuracy", ">=", 0.1),
)

RULE = {rule.key: rule for rule in RULES}


@dataclass(frozen=True)
class Finding:
    """A rule, the value measured for it (None: does not apply) and the verdict."""

    rule: Rule
    value: float | None
    passed: bool | None


@dataclass
class Report:
    """Every finding of one diagnosis, in checklist order, and the training run it measured."""

    pipeline: str
    findings: list[Finding]
    run: Run
    extras: dict[str, object]

    def first_failure(self) -> Finding | None:
        """The first failing check in checklist order (None when every check passes or does not apply)."""
        return next((f for f in self.findings if f.passed is False), None)

    def value(self, key: str) -> float | None:
        """The value measured for the rule with this key."""
        return next(f.value for f in self.findings if f.rule.key == key)

    def passed(self, key: str) -> bool | None:
        """The verdict of the rule with this key (None: does not apply)."""
        return next(f.passed for f in self.findings if f.rule.key == key)

    def rows(self) -> list[dict[str, object]]:
        """One row per check for a table: step, check, value, healthy range and verdict."""
        first = self.first_failure()
        verdicts = {True: "pass", False: "FAIL", None: "n/a"}
        return [{"step": f"{f.rule.step} {STEPS[f.rule.step]}", "check": f.rule.check,
                 "value": "—" if f.value is None else f.value, "healthy": f.rule.text(),
                 "verdict": "FIRST FAILURE" if f is first else verdicts[f.passed]} for f in self.findings]


def measure(pipeline: Pipeline, steps: int, overfit_steps: int, progress: ProgressReport | None = None,
            run: Run | None = None) -> tuple[dict[str, float | None], dict[str, object], Run]:
    """Every measurement the rules judge, from one training run and a handful of direct probes, plus
    extras worth reading beside them (validation accuracy, per-class recall, loss and gradient spikes).

    ``run`` reuses a training run of a pipeline that differs from this one only in its validation data."""
    data, ln_classes = pipeline.data, math.log(pipeline.data.n_classes)
    features = data.x_train.is_floating_point()
    run = run if run is not None else train(pipeline, steps, progress=share(progress, 0.0, 0.75))
    x, y = pipeline.batch(512)
    small_x, small_y = pipeline.batch(32)
    overfit = checks.overfit_one_batch(pipeline, small_x, small_y, overfit_steps)
    if progress is not None:
        progress(0.9)
    val_output = pipeline.predict(run.model, data.x_val)
    val_logits, val_labels = labelled_positions(pipeline, data.x_val, val_output, data.y_val)
    train_labels = data.y_train if pipeline.metric_mask is None else data.y_train[pipeline.metric_mask(data.x_train)]
    accuracy = (val_logits.argmax(-1) == val_labels).float().mean().item()
    majority_class = torch.bincount(train_labels).argmax()
    recalls = checks.class_recalls(val_logits, val_labels, data.n_classes)
    modes = checks.modes_during_training(pipeline, x, y)
    losses = torch.tensor(run.losses).nan_to_num(nan=math.inf)
    grad_norms = torch.tensor(run.grad_norms).nan_to_num(nan=math.inf)
    extras = {"val_accuracy": accuracy, "recalls": recalls.tolist(), "overfit_losses": overfit,
              "test_accuracy": evaluate(pipeline, run.model, data.x_test, data.y_test)[1],
              "loss_spike": losses.max().item() / ln_classes, "train_loss": losses[-10:].mean().item(),
              "grad_spike": (grad_norms.max() / grad_norms.median().clamp_min(1e-30)).item()}
    values = {
        "label_gain": (checks.nearest_neighbour_agreement(data.x_train, data.y_train)
                       - checks.majority_share(data.y_train)) if features else None,
        "init_loss": checks.loss_at_init(pipeline, x, y) / ln_classes,
        "confident_loss": checks.confident_loss(pipeline, x, y),
        "weight_spread": checks.weight_spread(pipeline, data.x_train, data.y_train),
        "update_ratio": torch.tensor(run.update_ratios[:EARLY_STEPS]).nan_to_num(nan=math.inf).max().item(),
        "non_finite": float(sum(not math.isfinite(a) or not math.isfinite(b)
                                for a, b in zip(run.losses, run.grad_norms))),
        "no_gradient": float(len(checks.parameters_without_gradient(pipeline, x, y))),
        "repeat_ratio": checks.step_gradient_ratio(pipeline, x, y),
        "batch_leak": checks.batch_leak(pipeline.fresh_model(), small_x),
        "eval_layers": float(modes.count(False)) if modes else None,
        "prediction_change": checks.prediction_disagreement(pipeline, run.model, data.x_val),
        "unchanged": sum(not moved for moved in run.moved_early.values()) / len(run.moved_early),
        "overfit_loss": sum(overfit[-5:]) / len(overfit[-5:]) / ln_classes,
        "baseline_gain": accuracy - (val_labels == majority_class).float().mean().item(),
        "input_rms": checks.input_rms(data.x_train) if features else None,
        "val_shift": checks.standardized_mean_difference(data.x_train, data.x_val) if features else None,
        "padding_change": (checks.padding_change(pipeline, pipeline.fresh_model(), x, y)
                           if pipeline.pad_id is not None else None),
        "near_duplicates": split_audit.near_duplicate_fraction(data.x_train, data.x_val) if features else None,
        "adversarial_auc": split_audit.adversarial_auc(data.x_train, data.x_val) if features else None,
        "class_balance": (torch.bincount(train_labels, minlength=data.n_classes).min().item()
                          * data.n_classes / len(train_labels)),
        "worst_recall": recalls.nan_to_num(nan=1.0).min().item() / max(accuracy, 1e-12),
    }
    if progress is not None:
        progress(1.0)
    return values, extras, run


def diagnose(pipeline: Pipeline, steps: int = 200, overfit_steps: int = 100,
             progress: ProgressReport | None = None, run: Run | None = None) -> Report:
    """Run every check of the ordered checklist on ``pipeline`` and return the report.

    ``run`` reuses the training run of a pipeline with the same training data and parts (a pipeline whose
    only fault is in its validation split trains exactly the same model)."""
    check_int("steps", steps, 20, 1_000_000)
    check_int("overfit_steps", overfit_steps, 5, 100_000)
    values, extras, run = measure(pipeline, steps, overfit_steps, progress, run)
    findings = [Finding(rule, values[rule.key], rule.judge(values[rule.key])) for rule in RULES]
    return Report(pipeline.name, findings, run, extras)
