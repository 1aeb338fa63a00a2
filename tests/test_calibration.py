"""Tests for helpers.calibration: hand-computed metrics, temperature scaling, explorers, checkers."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from helpers import calibration as cal  # noqa: E402


def two_class(conf: list[float], correct: list[int], dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary probabilities whose top class is 0 with the given confidences (all >= 0.5)."""
    c = torch.tensor(conf, dtype=dtype)
    return torch.stack([c, 1 - c], 1), 1 - torch.tensor(correct)


# ----------------------------------------------------------------------------- hand-computed values
def test_ece_hand_computed_two_bins():
    # bins of width 0.5: (0.5, 1.0] holds all four; accuracy 0.5, mean confidence 0.8 -> ECE 0.3
    probs, labels = two_class([0.9, 0.8, 0.7, 0.8], [1, 0, 1, 0])
    assert cal.expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.3)
    assert cal.maximum_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.3)


def test_ece_hand_computed_many_bins():
    # 10 bins: 0.55 -> (0.5, 0.6] wrong; 0.65 -> (0.6, 0.7] right; 0.95 x2 -> (0.9, 1.0] one right
    probs, labels = two_class([0.55, 0.65, 0.95, 0.95], [0, 1, 1, 0])
    expected = (0.55 + abs(1 - 0.65) + 2 * abs(0.5 - 0.95)) / 4
    assert cal.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)
    assert cal.maximum_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.55)


def test_hand_case_matches_the_worked_answer():
    probs, labels = cal.hand_case()
    # (0.8,1]: conf .9 acc 2/3; (0.6,0.8]: conf .72333 acc 2/3; (0.4,0.6]: .575 vs .5; (0.2,0.4]: .35 vs .5
    expected = (0.3 * abs(0.9 - 2 / 3) + 0.3 * abs((0.8 + 0.72 + 0.65) / 3 - 2 / 3)
                + 0.2 * abs(0.575 - 0.5) + 0.2 * abs(0.35 - 0.5))
    assert cal.expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(expected)
    assert cal.expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(0.132)


def test_edges_belong_to_the_lower_bin_in_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        conf = torch.tensor([0.6, 0.8, 1.0, 0.2000001], dtype=dtype)
        assert cal.bin_indices(conf, 5).tolist() == [2, 3, 4, 1]
    # float32 0.6 is stored as 0.6000000238 yet still lands in (0.4, 0.6]
    probs, labels = two_class([0.6, 0.6], [1, 1], dtype=torch.float32)
    bins = cal.calibration_bins(probs, labels, 5)
    assert bins.count.tolist() == [0, 0, 2, 0, 0]


def test_zero_confidence_goes_to_first_bin():
    assert cal.bin_indices(torch.tensor([0.0, 0.01]), 10).tolist() == [0, 0]


def test_equal_mass_bins_have_equal_counts():
    probs, labels = cal.synthetic_calibrated(1000, seed=1)
    bins = cal.calibration_bins(probs, labels, 10, "equal-mass")
    assert bins.count.tolist() == [100.0] * 10
    assert np.all(np.diff(bins.lower) > 0)


def test_equal_mass_hand_computed():
    # sorted confidences .6 .7 | .8 .9 ; correct 0 1 | 1 1 -> |0.5-0.65|/2 + |1-0.85|/2 = 0.15
    probs, labels = two_class([0.9, 0.6, 0.8, 0.7], [1, 0, 1, 1])
    assert cal.adaptive_calibration_error(probs, labels, 2) == pytest.approx(0.15)


def test_nll_and_brier_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert cal.negative_log_likelihood(probs, labels) == pytest.approx(-(math.log(0.7) + math.log(0.5)) / 2)
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.5**2 + 0.5**2)) / 2
    assert cal.brier_score(probs, labels) == pytest.approx(brier)


def test_nll_stays_finite_for_zero_probability():
    probs = torch.tensor([[1.0, 0.0]])
    assert math.isfinite(cal.negative_log_likelihood(probs, torch.tensor([1])))


def test_report_matches_pieces():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.arange(50) % 4
    report = cal.calibration_report(logits, labels)
    probs = logits.double().softmax(-1)
    assert report["ece"] == pytest.approx(cal.expected_calibration_error(probs, labels))
    assert report["nll"] == pytest.approx(torch.nn.functional.cross_entropy(logits.double(), labels).item())
    assert report["accuracy"] == pytest.approx((logits.argmax(-1) == labels).double().mean().item())


# ----------------------------------------------------------------------------- perfectly calibrated data
def test_perfectly_calibrated_ece_shrinks_with_samples():
    floor = cal.ece_noise_floor([200, 2000, 50_000], repeats=3)
    assert floor["mean"][0] > floor["mean"][1] > floor["mean"][2]
    assert floor["mean"][2] < 0.01


def test_overconfident_predictions_have_large_ece():
    probs, labels = cal.synthetic_calibrated(20_000, seed=0)
    sharpened = (probs.log() * 3).softmax(-1)  # same argmax, far more confident
    assert cal.expected_calibration_error(sharpened, labels) > 0.1


# ----------------------------------------------------------------------------- temperature scaling
def test_fit_temperature_recovers_a_known_temperature():
    probs, labels = cal.synthetic_calibrated(5000, seed=3)
    logits = probs.log() * 2.5  # calibrated log-probabilities made 2.5x sharper: T = 2.5 undoes it
    assert cal.fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_fit_temperature_minimises_nll_and_keeps_argmax():
    probs, labels = cal.synthetic_calibrated(5000, seed=4)
    logits = (probs.log() * 0.5).float()
    t = cal.fit_temperature(logits, labels)
    grid = cal.temperature_nll(logits, labels, [t * 0.9, t, t * 1.1])
    assert grid[1] <= grid[0] and grid[1] <= grid[2]
    scaled = cal.apply_temperature(logits, t)
    assert torch.equal(scaled.argmax(-1), logits.argmax(-1))
    assert t < 1


def test_apply_temperature_rejects_bad_values():
    with pytest.raises(ValueError, match="temperature"):
        cal.apply_temperature(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        cal.apply_temperature(torch.zeros(2, 3), float("nan"))


# ----------------------------------------------------------------------------- decisions and noise
def test_coverage_accuracy_hand_computed():
    probs, labels = two_class([0.9, 0.8, 0.6, 0.55], [1, 0, 1, 0])
    out = cal.coverage_accuracy(probs, labels, [0.5, 0.7, 0.85, 0.95])
    assert out["coverage"].tolist() == [1.0, 0.5, 0.25, 0.0]
    assert out["accuracy"][:3].tolist() == [0.5, 0.5, 1.0]
    assert math.isnan(out["accuracy"][3])


def test_bootstrap_interval_contains_the_estimate_and_is_deterministic():
    probs, labels = cal.synthetic_calibrated(300, seed=2)
    a = cal.bootstrap_ece(probs, labels, n_boot=200, seed=5)
    b = cal.bootstrap_ece(probs, labels, n_boot=200, seed=5)
    assert a == b
    assert a["low"] <= a["ece"] <= a["high"] + 0.02
    assert a["high"] - a["low"] > 0.01


def test_bootstrap_matches_direct_ece_per_sample():
    probs, labels = cal.synthetic_calibrated(50, seed=6)
    out = cal.bootstrap_ece(probs, labels, n_boot=20, seed=0)
    gen = torch.Generator().manual_seed(0)
    draws = torch.randint(0, 50, (20, 50), generator=gen)
    direct = [cal.expected_calibration_error(probs[d], labels[d]) for d in draws]
    assert out["std"] == pytest.approx(float(np.std(direct)))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("probs, labels, match", [
    (torch.tensor([0.5, 0.5]), torch.tensor([0]), "shape"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]), "labels must have shape"),
    (torch.tensor([[1.5, -0.5]]), torch.tensor([0]), r"\[0, 1\]"),
    (torch.tensor([[0.5, 0.4]]), torch.tensor([0]), "sum to 1"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([2]), r"labels must be in \[0, 1\]"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([-1]), "labels must be in"),
    (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "at least one"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0.0]), "integer"),
])
def test_metrics_validate_inputs(probs, labels, match):
    for fn in (cal.expected_calibration_error, cal.maximum_calibration_error, cal.adaptive_calibration_error,
               cal.negative_log_likelihood, cal.brier_score):
        with pytest.raises(ValueError, match=match):
            fn(probs, labels)


def test_argument_ranges_are_validated():
    probs, labels = two_class([0.9, 0.6], [1, 0])
    with pytest.raises(ValueError, match="n_bins"):
        cal.expected_calibration_error(probs, labels, n_bins=0)
    with pytest.raises(ValueError, match="scheme"):
        cal.calibration_error(probs, labels, scheme="quantile")
    with pytest.raises(ValueError, match="threshold"):
        cal.coverage_accuracy(probs, labels, [1.5])
    with pytest.raises(ValueError, match="n_boot"):
        cal.bootstrap_ece(probs, labels, n_boot=10**6)
    with pytest.raises(ValueError, match="logits"):
        cal.fit_temperature(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logits"):
        cal.fit_temperature(torch.tensor([[float("inf"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="n"):
        cal.synthetic_calibrated(0)
    with pytest.raises(ValueError, match="settings"):
        cal.calibration_sweep(None, {})


# ----------------------------------------------------------------------------- figures and explorers
def test_reliability_diagram_has_title_with_ece_and_labels():
    probs, labels = cal.synthetic_calibrated(500, seed=0)
    fig = cal.reliability_diagram(probs, labels, "Test")
    top, bottom = fig.axes
    assert "ECE" in top.get_title() and top.get_ylabel() and bottom.get_xlabel() and bottom.get_ylabel()
    matplotlib.pyplot.close(fig)
    fig = cal.confidence_histogram(probs, labels, "Confidence")
    assert fig.axes[0].get_legend() is not None
    matplotlib.pyplot.close(fig)


def test_explore_temperature_returns_numbers_and_validates():
    probs, labels = cal.synthetic_calibrated(400, seed=0)
    logits = probs.log().float() * 3
    fig, numbers = cal.explore_temperature(logits, labels, temperature=3.0, n_bins=10)
    assert numbers["ece"] == pytest.approx(cal.calibration_report(logits / 3.0, labels, 10)["ece"], abs=1e-4)
    assert numbers["accuracy"] == pytest.approx(cal.calibration_report(logits, labels)["accuracy"], abs=1e-4)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="temperature"):
        cal.explore_temperature(logits, labels, temperature=9.0)
    with pytest.raises(ValueError, match="n_bins"):
        cal.explore_temperature(logits, labels, n_bins=4)


def test_explore_bins_reports_the_current_estimate():
    probs, labels = cal.synthetic_calibrated(400, seed=0)
    fig, numbers = cal.explore_bins(probs, labels, n_bins=12, scheme="equal-mass")
    assert numbers["ece"] == pytest.approx(cal.adaptive_calibration_error(probs, labels, 12), abs=1e-4)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="scheme"):
        cal.explore_bins(probs, labels, scheme="other")
    with pytest.raises(ValueError, match="n_bins"):
        cal.explore_bins(probs, labels, n_bins=31)


def test_calibration_tracker_and_sweep_on_a_tiny_run():
    from helpers import data

    digits = data.digits(device="cpu")
    tracker = cal.CalibrationTracker(digits.x_val, digits.y_val)
    model, history = cal.train_classifier(digits, width=16, epochs=2, seed=0, callbacks=[tracker])
    assert len(history.extra["calibration"]["ece"]) == 2
    report = cal.evaluate_calibration(model, digits)
    assert report["temperature"] > 0 and 0 <= report["ece"] <= 1


# ----------------------------------------------------------------------------- exercise checkers
def test_check_hand_ece(capsys):
    assert cal.check_hand_ece(None) is False
    assert "Not attempted" in capsys.readouterr().out
    assert cal.check_hand_ece(0.132) is True
    with pytest.raises(AssertionError, match="Hint"):
        cal.check_hand_ece(0.2)


def test_check_temperature_search(capsys):
    probs, labels = cal.synthetic_calibrated(2000, seed=1)
    logits = probs.log() * 2

    def stub(z, y):
        raise NotImplementedError

    def grid_search(z, y):
        grid = torch.logspace(-1, 1, 400).tolist()
        return grid[int(np.argmin(cal.temperature_nll(z, y, grid)))]

    assert cal.check_temperature_search(stub, logits, labels) is False
    assert "Not attempted" in capsys.readouterr().out
    assert cal.check_temperature_search(lambda z, y: None, logits, labels) is False
    assert cal.check_temperature_search(grid_search, logits, labels) is True
    with pytest.raises(AssertionError, match="Hint"):
        cal.check_temperature_search(lambda z, y: 1.0, logits, labels)


def test_summary_figures_are_labelled_and_validate():
    probs, labels = cal.synthetic_calibrated(300, seed=0)
    logits = probs.log().float()
    record = {"ece": [0.1, 0.2], "nll": [1.0, 1.2], "error": [0.5, 0.45], "confidence": [0.6, 0.7]}
    results = {"a": {"ece": 0.2, "ece_scaled": 0.05, "temperature": 2.0}}
    curves = {"x": cal.coverage_accuracy(probs, labels, [0.3, 0.6, 0.9])}
    figures = [cal.epoch_curves(record), cal.sweep_bars(results, "Sweep"),
               cal.coverage_plot(curves, "Coverage", mark=0.6), cal.noise_floor_plot(cal.ece_noise_floor([50, 100], repeats=2)),
               cal.nll_temperature_plot(logits, labels, logits, labels, [0.5, 1.0, 2.0], 1.0)]
    for fig in figures:
        drawn = [ax for ax in fig.axes if ax.has_data()]
        assert all(ax.get_ylabel() for ax in drawn)  # twin axes share the x label of their host
        assert all(any(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)) for ax in drawn)
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="record"):
        cal.epoch_curves({"ece": []})
    with pytest.raises(ValueError, match="results"):
        cal.sweep_bars({}, "Empty")
    with pytest.raises(ValueError, match="panels"):
        cal.reliability_diagrams({}, "Empty")


def test_unit_digits_scales_pixels_into_unit_interval():
    digits = cal.unit_digits(seed=1, device="cpu")
    assert 0 <= float(digits.x_train.min()) and float(digits.x_val.max()) <= 1
