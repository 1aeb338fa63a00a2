"""Notebook 08, part 3: temperatures per population, reliability, routing thresholds and the drift monitor."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.experiments import nb08_traps_and_checklist_calibration as calibration


def test_softmax_temperature_and_its_fit():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(calibration.softmax(logits).sum(axis=1), 1.0)
    np.testing.assert_allclose(calibration.softmax(logits, 2.0), calibration.softmax(logits / 2.0))
    rng = np.random.default_rng(0)
    base = rng.normal(0, 2, (3000, 4))
    labels = np.array([rng.choice(4, p=p) for p in calibration.softmax(base)])
    fitted = calibration.fit_temperature(base, labels)
    assert 0.85 < fitted < 1.15                                               # labels drawn at T = 1
    assert calibration.fit_temperature(3 * base, labels) == pytest.approx(3 * fitted, rel=1e-3)


def test_ece_by_hand():
    probs = np.array([[0.8, 0.2], [0.6, 0.4]])
    # Two bins of one message each: |1 - 0.8| and |0 - 0.6|, averaged.
    assert calibration.ece(probs, np.array([0, 1])) == pytest.approx(0.4)
    assert calibration.ece(probs, np.array([0, 0])) == pytest.approx(0.3)


def mixture(seed: int = 0, n: int = 4000):
    """Ordinary messages calibrated at T = 1, copies whose labels ignore the logits (right 1 time in 4)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 4))
    copies = np.arange(n) % 4 == 0
    labels = np.array([rng.choice(4, p=p) for p in calibration.softmax(logits)])
    labels[copies] = rng.integers(0, 4, copies.sum())
    return logits, labels, copies


def test_temperatures_by_population_separate_the_mixture():
    logits, labels, copies = mixture()
    found = calibration.temperatures_by_population(logits, labels, copies)
    assert set(found) == set(calibration.POPULATIONS)
    assert 0.85 < found["ordinary messages"] < 1.15
    assert found["incident copies"] > 10 * found["ordinary messages"]
    assert found["ordinary messages"] < found["all messages"] < found["incident copies"]


def test_population_table_reports_each_population_and_temperature():
    logits, labels, copies = mixture()
    rows = calibration.population_table(logits, labels, copies, {"one": 1.0, "two": 2.0})
    assert [row["population"] for row in rows] == list(calibration.POPULATIONS)
    assert rows[0]["messages"] == len(labels) and rows[2]["messages"] == copies.sum()
    assert rows[2]["accuracy"] == pytest.approx(np.mean(logits[copies].argmax(1) == labels[copies]))
    assert rows[1]["ECE at T=1.00 (one)"] < rows[1]["ECE at T=2.00 (two)"]              # T = 1 is right there
    assert rows[2]["cross-entropy"] > rows[1]["cross-entropy"]


def test_wilson_lower_bound_matches_the_textbook_value():
    assert calibration.wilson_lower(8, 10) == pytest.approx(0.4902, abs=1e-4)
    assert calibration.wilson_lower(80, 100) < 0.8 < calibration.wilson_lower(800, 1000) + 0.03
    assert calibration.wilson_lower(0, 5) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="trials"):
        calibration.wilson_lower(3, 2)


def test_routing_threshold_by_hand():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    # Top-k accuracies: 1, 1, 2/3, 3/4, 3/5; the largest k reaching 0.75 is k = 4.
    assert calibration.routing_threshold(confidence, correct, 0.75, "point estimate") == 0.6
    assert calibration.routing_threshold(confidence, correct, 0.75, "Wilson lower bound") == math.inf
    assert calibration.routing_threshold(confidence[:0], correct[:0], 0.5, "point estimate") == math.inf
    with pytest.raises(ValueError, match="rule"):
        calibration.routing_threshold(confidence, correct, 0.75, "median")


VALIDATION = {"confidence": np.array([0.9, 0.8, 0.9, 0.4]), "correct": np.array([True, True, True, False]),
              "segment": np.array([0, 0, 1, 1])}
FUTURE = {"confidence": np.array([0.95, 0.5, 0.85, 0.3]), "correct": np.array([False, True, True, True]),
          "segment": np.array([0, 0, 1, 1])}


def test_segment_routing_reports_each_segment():
    rows = calibration.segment_routing(VALIDATION, FUTURE, ["a", "b"], 0.9, "point estimate")
    assert [row["threshold"] for row in rows] == [0.8, 0.9]
    assert rows[0]["coverage"] == 0.5 and rows[0]["misrouted"] == 1 and rows[0]["routed accuracy"] == 0.0
    assert rows[1]["coverage"] == 0.0 and math.isnan(rows[1]["routed accuracy"])
    assert rows[0]["chosen on"] == 2


def test_routing_check_scores_both_rules_on_the_future_and_the_same_period():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 2000)
    validation = {"confidence": confidence, "correct": rng.uniform(size=2000) < confidence,
                  "segment": rng.integers(0, 2, 2000)}
    rows = calibration.routing_check(validation, FUTURE, ["a", "b"], 0.8, seed=0)
    assert len(rows) == 8
    assert {(row["rule"], row["scored on"]) for row in rows} == {
        (rule, scored) for rule in calibration.ROUTING_RULES for scored in ("future", "same period")}
    same = [row for row in rows if row["scored on"] == "same period"]
    assert all(row["chosen on"] < 1100 for row in same)                        # half of validation, per segment
    # Calibrated confidence: in the same period the Wilson bound keeps the routed accuracy above the target.
    assert calibration.worst_shortfall(rows, 0.8, "Wilson lower bound", "same period") < 0.0
    assert math.isnan(calibration.worst_shortfall([], 0.8, "point estimate", "future"))


def test_worst_shortfall_and_routed_accuracy_by_hand():
    rows = [{"segment": "a", "rule": "point estimate", "scored on": "future", "threshold": 0.8,
             "coverage": 0.5, "routed accuracy": 0.0},
            {"segment": "b", "rule": "point estimate", "scored on": "future", "threshold": 0.9,
             "coverage": 0.0, "routed accuracy": math.nan}]
    assert calibration.worst_shortfall(rows, 0.9, "point estimate", "future") == pytest.approx(0.9)
    everyone = np.ones(4, dtype=bool)
    assert calibration.routed_accuracy(FUTURE, rows, "point estimate", "future", everyone) == 0.0
    assert math.isnan(calibration.routed_accuracy(FUTURE, rows, "point estimate", "future", ~everyone))


def test_rare_word_share_counts_words_in_few_training_messages():
    fit = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])  # in 4, 2, 1 and 0 of 4 messages
    words = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(calibration.rare_word_share(fit, words, min_share=0.5), [0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(calibration.rare_word_share(fit, words, min_share=0.6), [0.5, 1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="min_share"):
        calibration.rare_word_share(fit, words, min_share=0.0)


def test_weekly_monitor_averages_each_week():
    day = np.array([239.0, 240.0, 241.0, 248.0, 260.0, 261.0, 262.0])
    weekly = calibration.weekly_monitor(day, np.array([0.9, 0.1, 0.3, 0.5, 0.2, 0.4, 0.9]),
                                        np.array([False, True, False, True, True, True, False]), 240, 262)
    # Three whole weeks; day 261 joins the last one; days 239 and 262 lie outside.
    np.testing.assert_allclose(weekly["week start"], [240, 247, 254])
    np.testing.assert_allclose(weekly["unseen word share"], [0.2, 0.5, 0.3])
    np.testing.assert_allclose(weekly["accuracy"], [0.5, 1.0, 1.0])
    assert len(calibration.weekly_monitor(day, day, day, 240, 243)["week start"]) == 1
    with pytest.raises(ValueError, match="stop"):
        calibration.weekly_monitor(day, day, day, 250, 240)
    with pytest.raises(ValueError, match="week"):
        calibration.weekly_monitor(day, day, day, 240, 262, week=0.0)


def test_figures_draw_every_population():
    logits, labels, copies = mixture(n=800)
    temperatures = calibration.temperatures_by_population(logits, labels, copies)
    fig = calibration.reliability_figure(logits, labels, copies, {"no scaling": 1.0, "fitted": 2.0})
    assert len(fig.axes) == 2 and all(ax.has_data() for ax in fig.axes)
    assert calibration.nll_curves_figure(logits, labels, copies, temperatures).axes[0].has_data()
    weekly = calibration.weekly_monitor(np.arange(240, 360.0), np.linspace(0, 0.2, 120), np.ones(120, bool), 240, 360)
    assert all(ax.has_data() for ax in calibration.monitor_figure(weekly, 300).axes)
    both = calibration.monitor_figure(weekly, 300, weekly["accuracy"] - 0.1)
    assert len(both.axes[1].lines) == 3                                         # two series and the marker line
    with pytest.raises(ValueError, match="bins"):
        calibration.reliability_figure(logits, labels, copies, {"one": 1.0}, bins=1)
