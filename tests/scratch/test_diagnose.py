"""The ordered checklist: rules, reports, and a diagnosis of small healthy and broken pipelines."""
import math
from dataclasses import replace

import pytest
import torch
from tiny_pipelines import no_zero_grad, tiny
from torch.nn import functional

from helpers.scratch import data_faults, diagnose
from helpers.scratch.diagnose import RULE, RULES, Finding, Report, Rule


def test_rules_judge_their_ranges_inclusively_and_fail_nan():
    at_most, at_least, inside = Rule(2, "a", "a", "<=", 1.0), Rule(2, "b", "b", ">=", 1.0), Rule(3, "c", "c", "between",
                                                                                                 (1.0, 2.0))
    assert at_most.judge(1.0) and not at_most.judge(1.0001)
    assert at_least.judge(1.0) and not at_least.judge(0.9999)
    assert inside.judge(1.0) and inside.judge(2.0) and not inside.judge(0.99) and not inside.judge(2.01)
    assert all(rule.judge(math.nan) is False for rule in (at_most, at_least, inside))
    assert all(rule.judge(None) is None for rule in (at_most, at_least, inside))
    assert (at_most.text(), at_least.text(), inside.text()) == ("<= 1", ">= 1", "in [1, 2]")
    with pytest.raises(ValueError, match=r"^op must"):
        Rule(1, "x", "x", "<", 1.0)
    with pytest.raises(ValueError, match=r"^step must"):
        Rule(9, "x", "x", "<=", 1.0)


def test_the_checklist_is_in_the_guides_order_with_one_rule_per_key():
    steps = [rule.step for rule in RULES]
    assert steps == sorted(steps) and set(steps) == set(diagnose.STEPS)
    assert len(RULE) == len(RULES) == 21
    assert RULE["update_ratio"].threshold == (1e-3, 0.5) and RULE["init_loss"].threshold == (0.85, 1.2)


def report_of(values: dict) -> Report:
    findings = [Finding(rule, values.get(rule.key), rule.judge(values.get(rule.key))) for rule in RULES]
    return Report("made up", findings, run=None, extras={})


def test_reports_mark_the_first_failure_in_checklist_order():
    report = report_of({"init_loss": 1.0, "batch_leak": 0.5, "worst_recall": 0.0})
    assert report.first_failure().rule.key == "batch_leak"
    assert report.value("batch_leak") == 0.5 and report.value("label_gain") is None
    assert report.passed("init_loss") is True and report.passed("worst_recall") is False
    assert report.passed("label_gain") is None
    rows = report.rows()
    assert len(rows) == len(RULES)
    verdicts = {row["check"]: row["verdict"] for row in rows}
    assert verdicts[RULE["batch_leak"].check] == "FIRST FAILURE"
    assert verdicts[RULE["worst_recall"].check] == "FAIL" and verdicts[RULE["init_loss"].check] == "pass"
    assert verdicts[RULE["label_gain"].check] == "n/a"
    assert rows[0]["step"] == "1 data and labels" and rows[0]["value"] == "—"
    assert report_of({"init_loss": 1.0}).first_failure() is None


def test_a_healthy_pipeline_passes_every_check_that_applies():
    report = diagnose.diagnose(tiny(), steps=60, overfit_steps=100)
    assert report.first_failure() is None, report.rows()
    assert [f.rule.key for f in report.findings if f.passed is None] == ["padding_change"]
    assert report.extras["val_accuracy"] > 0.9 and len(report.extras["recalls"]) == 3
    assert len(report.extras["overfit_losses"]) == 100 and report.extras["test_accuracy"] > 0.9
    assert report.extras["loss_spike"] == pytest.approx(max(report.run.losses) / math.log(3))


@pytest.mark.parametrize("change, key", [
    ({"train_step": no_zero_grad}, "repeat_ratio"),
    ({"loss": lambda output, x, y: functional.cross_entropy(output.softmax(-1), y)}, "confident_loss"),
    ({"make_optimizer": lambda model: torch.optim.Adam(model.parameters(), lr=1e-7)}, "update_ratio"),
    ({"predict": lambda model, x: model.train()(x).detach()}, "prediction_change"),
])
def test_a_planted_bug_is_stopped_by_the_check_that_names_it(change, key):
    assert diagnose.diagnose(tiny(**change), steps=40).first_failure().rule.key == key


def test_data_faults_are_stopped_at_the_data_and_split_steps():
    shuffled = tiny()
    shuffled = replace(shuffled, data=data_faults.shuffle_labels(shuffled.data))
    assert diagnose.diagnose(shuffled, steps=40).first_failure().rule.key == "label_gain"
    healthy = diagnose.diagnose(tiny(), steps=40)
    leaked = tiny()
    leaked = replace(leaked, data=data_faults.leak_near_duplicates(leaked.data, 0.5))
    report = diagnose.diagnose(leaked, steps=40, run=healthy.run)
    assert report.run is healthy.run and report.first_failure().rule.key == "near_duplicates"


def test_diagnose_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^steps must"):
        diagnose.diagnose(tiny(), steps=10)
    with pytest.raises(ValueError, match=r"^overfit_steps must"):
        diagnose.diagnose(tiny(), steps=40, overfit_steps=1)


def test_progress_reaches_the_end():
    seen = []
    diagnose.diagnose(tiny(), steps=40, overfit_steps=5, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_report_rows_show_values_ranges_and_step_names():
    report = report_of({"init_loss": 0.5, "batch_leak": 0.0})
    row = next(r for r in report.rows() if r["check"] == RULE["init_loss"].check)
    assert row == {"step": "2 loss", "check": "loss at init / ln C", "value": 0.5, "healthy": "in [0.85, 1.2]",
                   "verdict": "FIRST FAILURE"}
    leak = next(r for r in report.rows() if r["check"] == RULE["batch_leak"].check)
    assert leak["step"] == "4 gradients" and leak["verdict"] == "pass" and leak["healthy"] == "<= 0.0001"
    assert diagnose.STEPS == {1: "data and labels", 2: "loss", 3: "learning rate", 4: "gradients", 5: "model mode",
                              6: "simplify", 7: "preprocessing", 8: "splits and segments"}
    assert [(r.key, r.op, r.threshold) for r in RULES] == [
        ("label_gain", ">=", 0.15), ("init_loss", "between", (0.85, 1.2)), ("confident_loss", "<=", 0.05),
        ("weight_spread", "<=", 10.0), ("padding_change", "<=", 1e-4),
        ("update_ratio", "between", (1e-3, 0.5)), ("non_finite", "<=", 0), ("no_gradient", "<=", 0),
        ("repeat_ratio", "between", (0.99, 1.01)), ("batch_leak", "<=", 1e-4),
        ("eval_layers", "<=", 0), ("prediction_change", "<=", 1e-4), ("unchanged", "<=", 0),
        ("overfit_loss", "<=", 0.1), ("baseline_gain", ">=", 0.1), ("input_rms", "between", (0.1, 10.0)),
        ("val_shift", "<=", 1.0), ("near_duplicates", "<=", 0.02),
        ("adversarial_auc", "<=", 0.7), ("class_balance", ">=", 0.2), ("worst_recall", ">=", 0.1)]


def test_diagnose_defaults():
    import inspect

    parameters = inspect.signature(diagnose.diagnose).parameters
    assert parameters["steps"].default == 200 and parameters["overfit_steps"].default == 100
