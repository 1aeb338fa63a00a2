"""helpers.scratch.calibration against hand-computed values and independent references.

The references here are written differently on purpose: a per-example Python loop for the bins and the
calibration error, a brute-force grid of NLL for the temperature, and cross-entropy for focal loss.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from helpers.scratch import calibration as scratch


def reference_bin(confidence: float, n_bins: int) -> int:
    """Equal-width bin of a confidence that lies on no edge: ((m-1)/M, m/M] -> m - 1, and 0 -> 0."""
    return max(math.ceil(confidence * n_bins) - 1, 0)


def reference_error(confidence: list[float], outcome: list[float], n_bins: int) -> float:
    """ECE by a loop over examples, then over bins."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for c, o in zip(confidence, outcome):
        groups.setdefault(reference_bin(c, n_bins), []).append((c, o))
    total = 0.0
    for members in groups.values():
        mean_confidence = sum(c for c, _ in members) / len(members)
        frequency = sum(o for _, o in members) / len(members)
        total += len(members) * abs(frequency - mean_confidence)
    return total / len(confidence)


def random_forecasts(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    confidence = torch.rand(n, generator=generator, dtype=torch.float64)
    outcome = (torch.rand(n, generator=generator, dtype=torch.float64) < confidence ** 2).double()
    return confidence, outcome


def probs_with_top(confidence: list[float], correct: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Four-class probabilities with class 0 on top at the given confidence (the rest shared equally);
    the label is 0 where the prediction is right and 1 where it is wrong."""
    top = torch.tensor(confidence, dtype=torch.float64)
    probs = torch.cat([top.unsqueeze(1), ((1 - top) / 3).unsqueeze(1).expand(-1, 3)], 1)
    return probs, 1 - torch.tensor(correct)


# ----------------------------------------------------------------------------- bins
def test_equal_width_edges_belong_to_the_bin_that_ends_there_in_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        confidence = torch.tensor([0.0, 0.2, 0.2000001, 0.6, 0.61, 0.8, 0.99, 1.0], dtype=dtype)
        assert scratch.bin_indices(confidence, 5).tolist() == [0, 0, 1, 2, 3, 3, 4, 4]


def test_equal_width_bins_match_the_reference_on_random_values():
    confidence, _ = random_forecasts(500, seed=0)
    for n_bins in (1, 2, 7, 15):
        expected = [reference_bin(c, n_bins) for c in confidence.tolist()]
        assert scratch.bin_indices(confidence, n_bins).tolist() == expected


def test_equal_mass_bins_split_by_rank_into_equal_sizes():
    confidence = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2], dtype=torch.float64)
    assert scratch.bin_indices(confidence, 3, "equal-mass").tolist() == [2, 0, 1, 1, 2, 0]
    assert scratch.bin_indices(confidence, 2, "equal-mass").tolist() == [1, 0, 1, 0, 1, 0]
    sizes = torch.bincount(scratch.bin_indices(torch.rand(1000, dtype=torch.float64), 7, "equal-mass"))
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 1000


def test_reliability_bins_hand_computed():
    confidence = torch.tensor([0.1, 0.3, 0.35, 0.9], dtype=torch.float64)
    outcome = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    bins = scratch.reliability_bins(confidence, outcome, n_bins=4)
    assert bins.count.tolist() == [1, 2, 0, 1]
    assert bins.confidence[[0, 1, 3]].tolist() == pytest.approx([0.1, 0.325, 0.9])
    assert bins.frequency[[0, 1, 3]].tolist() == [0.0, 0.5, 1.0]
    assert math.isnan(bins.confidence[2]) and math.isnan(bins.frequency[2])


# ----------------------------------------------------------------------------- calibration error
def test_calibration_error_hand_computed():
    # bins of width 0.5: (0.5, 1] holds all four; frequency 0.5, mean confidence 0.8 -> ECE 0.3
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.8], dtype=torch.float64)
    outcome = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert scratch.calibration_error(confidence, outcome, 2) == pytest.approx(0.3)
    # ten bins: 0.55 wrong, 0.65 right, 0.95 twice with one right
    confidence = torch.tensor([0.55, 0.65, 0.95, 0.95], dtype=torch.float64)
    outcome = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert scratch.calibration_error(confidence, outcome, 10) == pytest.approx((0.55 + 0.35 + 2 * 0.45) / 4)


def test_calibration_error_matches_the_reference_loop():
    for seed, n_bins in ((1, 15), (2, 4), (3, 1), (4, 30)):
        confidence, outcome = random_forecasts(300, seed)
        expected = reference_error(confidence.tolist(), outcome.tolist(), n_bins)
        assert scratch.calibration_error(confidence, outcome, n_bins) == pytest.approx(expected, abs=1e-12)


def test_equal_mass_calibration_error_hand_computed():
    # sorted .6 .7 | .8 .9 with outcomes 0 1 | 1 1: |0.5 - 0.65| / 2 + |1 - 0.85| / 2 = 0.15
    confidence = torch.tensor([0.9, 0.6, 0.8, 0.7], dtype=torch.float64)
    outcome = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    assert scratch.calibration_error(confidence, outcome, 2, "equal-mass") == pytest.approx(0.15)


def test_error_is_at_least_the_overall_gap_with_equality_when_every_bin_errs_the_same_way():
    confidence, outcome = random_forecasts(400, seed=5)
    gap = abs(float(confidence.mean() - outcome.mean()))
    for n_bins in (1, 5, 15):
        assert scratch.calibration_error(confidence, outcome, n_bins) >= gap - 1e-12
    assert scratch.calibration_error(confidence, outcome, 1) == pytest.approx(gap)
    over_confident = torch.ones_like(confidence) * 0.0
    assert scratch.calibration_error(confidence, over_confident, 15) == pytest.approx(float(confidence.mean()))


def test_expected_calibration_error_uses_the_top_label():
    probs, labels = probs_with_top([0.95, 0.9, 0.85, 0.8, 0.72, 0.65, 0.6, 0.55, 0.4, 0.3],
                                   [1, 1, 0, 1, 1, 0, 1, 0, 1, 0])
    expected = 0.3 * abs(0.9 - 2 / 3) + 0.3 * abs((0.8 + 0.72 + 0.65) / 3 - 2 / 3) + 0.2 * 0.075 + 0.2 * 0.15
    assert scratch.expected_calibration_error(probs, labels, 5) == pytest.approx(expected)
    confidence, correct = scratch.top_label(probs, labels)
    assert confidence.tolist() == pytest.approx([0.95, 0.9, 0.85, 0.8, 0.72, 0.65, 0.6, 0.55, 0.4, 0.3])
    assert correct.tolist() == [1, 1, 0, 1, 1, 0, 1, 0, 1, 0]


def test_classwise_error_is_the_mean_of_the_per_class_reference_errors():
    generator = torch.Generator().manual_seed(6)
    probs = (torch.randn(200, 3, generator=generator, dtype=torch.float64) * 2).softmax(-1)
    labels = torch.multinomial(probs ** 2 / (probs ** 2).sum(1, keepdim=True), 1, generator=generator).squeeze(1)
    expected = sum(reference_error(probs[:, k].tolist(), (labels == k).double().tolist(), 10) for k in range(3)) / 3
    assert scratch.classwise_calibration_error(probs, labels, 10) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- Brier score
def test_brier_decomposition_hand_computed_and_exact_for_one_value_per_bin():
    confidence = torch.tensor([0.2, 0.2, 0.8, 0.8, 0.8], dtype=torch.float64)
    outcome = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    parts = scratch.brier_decomposition(confidence, outcome, 5)
    assert parts["brier"] == pytest.approx((0.04 + 0.64 + 0.04 + 0.04 + 0.64) / 5)
    assert parts["reliability"] == pytest.approx(0.4 * (0.2 - 0.5) ** 2 + 0.6 * (0.8 - 2 / 3) ** 2)
    assert parts["resolution"] == pytest.approx(0.4 * (0.5 - 0.6) ** 2 + 0.6 * (2 / 3 - 0.6) ** 2)
    assert parts["uncertainty"] == pytest.approx(0.6 * 0.4)
    assert parts["brier"] == pytest.approx(parts["reliability"] - parts["resolution"] + parts["uncertainty"])


def test_brier_decomposition_bins_as_asked_fifteen_by_default():
    confidence, outcome = random_forecasts(300, seed=15)
    base_rate = float(outcome.mean())
    for n_bins, parts in ((15, scratch.brier_decomposition(confidence, outcome)),
                          (4, scratch.brier_decomposition(confidence, outcome, 4))):
        groups: dict[int, list[tuple[float, float]]] = {}
        for c, o in zip(confidence.tolist(), outcome.tolist()):
            groups.setdefault(reference_bin(c, n_bins), []).append((c, o))
        means = [(len(g) / 300, sum(c for c, _ in g) / len(g), sum(o for _, o in g) / len(g)) for g in groups.values()]
        assert parts["reliability"] == pytest.approx(sum(w * (c - o) ** 2 for w, c, o in means))
        assert parts["resolution"] == pytest.approx(sum(w * (o - base_rate) ** 2 for w, _, o in means))


def test_a_constant_forecast_has_no_resolution():
    outcome = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    parts = scratch.brier_decomposition(torch.full((4,), 0.25, dtype=torch.float64), outcome)
    assert parts["resolution"] == 0.0 and parts["reliability"] == pytest.approx(0.0)
    assert parts["brier"] == pytest.approx(parts["uncertainty"])


# ----------------------------------------------------------------------------- resampled errors
def test_resampled_errors_are_the_calibration_errors_of_outcomes_drawn_from_the_confidences():
    for dtype, n_bins, scheme in ((torch.float32, 5, "equal-width"), (torch.float64, 15, "equal-width"),
                                  (torch.float64, 4, "equal-mass")):
        confidence = torch.tensor([0.0, 0.2, 0.6, 0.61, 0.8, 0.95, 1.0, 0.35, 0.5, 0.05], dtype=dtype)
        errors = scratch.resampled_errors(confidence, n_draws=6, n_bins=n_bins, scheme=scheme, seed=3)
        draws = torch.bernoulli(confidence.double().expand(6, -1), generator=torch.Generator().manual_seed(3))
        expected = [scratch.calibration_error(confidence, draw, n_bins, scheme) for draw in draws]   # edges as on paper
        assert errors.shape == (6,) and errors.tolist() == pytest.approx(expected, abs=1e-12)
        assert len(set(errors.tolist())) > 1


def test_resampled_errors_of_a_fair_coin_average_the_binomial_mean_absolute_deviation():
    n = 100                                                                 # one bin: ECE = |heads / n - 1/2|
    exact = sum(math.comb(n, k) * 0.5 ** n * abs(k / n - 0.5) for k in range(n + 1))
    errors = scratch.resampled_errors(torch.full((n,), 0.5, dtype=torch.float64), n_draws=20_000, n_bins=1)
    assert float(errors.mean()) == pytest.approx(exact, abs=0.0015)
    assert set(errors.mul(n).round().tolist()) <= {float(abs(k - 50)) for k in range(101)}


def test_resampled_errors_vanish_for_certain_forecasts_and_follow_the_seed():
    certain = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert scratch.resampled_errors(certain, n_draws=5).tolist() == [0.0] * 5
    confidence, _ = random_forecasts(200, seed=16)
    first, again = scratch.resampled_errors(confidence, seed=1), scratch.resampled_errors(confidence, seed=1)
    assert torch.equal(first, again) and not torch.equal(first, scratch.resampled_errors(confidence, seed=2))
    assert scratch.resampled_errors(confidence).shape == (200,)


def test_resampled_errors_validate():
    confidence, _ = random_forecasts(10, seed=17)
    with pytest.raises(ValueError, match="n_draws"):
        scratch.resampled_errors(confidence, n_draws=0)
    with pytest.raises(ValueError, match="n_draws"):
        scratch.resampled_errors(confidence, n_draws=5_000_001)
    with pytest.raises(ValueError, match="scheme"):
        scratch.resampled_errors(confidence, scheme="quantile")
    with pytest.raises(ValueError, match="n_bins"):
        scratch.resampled_errors(confidence, n_bins=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scratch.resampled_errors(confidence + 1)


# ----------------------------------------------------------------------------- temperature scaling
def test_fit_temperature_matches_a_brute_force_grid():
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(600, 5, generator=generator, dtype=torch.float64) * 3
    labels = torch.multinomial((logits / 2.5).softmax(-1), 1, generator=generator).squeeze(1)
    grid = torch.logspace(-1, 1, 4001, dtype=torch.float64)
    nll = torch.stack([functional.cross_entropy(logits / t, labels) for t in grid])
    best = float(grid[nll.argmin()])
    assert scratch.fit_temperature(logits, labels) == pytest.approx(best, rel=2e-3)
    assert scratch.fit_temperature(logits.float(), labels) == pytest.approx(best, rel=2e-3)


def test_fit_temperature_below_one_for_under_confident_logits():
    generator = torch.Generator().manual_seed(8)
    logits = torch.randn(2000, 4, generator=generator, dtype=torch.float64) * 2
    labels = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    assert scratch.fit_temperature(logits * 0.4, labels) == pytest.approx(0.4, rel=0.1)


def test_fit_temperature_rejects_bad_input():
    with pytest.raises(ValueError, match="logits"):
        scratch.fit_temperature(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="finite"):
        scratch.fit_temperature(torch.tensor([[float("inf"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="max_iter"):
        scratch.fit_temperature(torch.zeros(2, 3), torch.tensor([0, 1]), max_iter=0)


# ----------------------------------------------------------------------------- histogram binning
def test_histogram_binning_hand_computed():
    confidence = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8, 0.3], dtype=torch.float64)
    outcome = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    binning = scratch.fit_histogram_binning(confidence, outcome, n_bins=2)
    assert binning.inner_edges.tolist() == pytest.approx([0.5])          # midway between 0.4 and 0.6
    assert binning.frequency.tolist() == pytest.approx([(1 + 1) / (3 + 2), (2 + 1) / (3 + 2)])
    new = binning(torch.tensor([0.1, 0.45, 0.5, 0.55, 1.0], dtype=torch.float64))
    assert new.tolist() == pytest.approx([0.4, 0.4, 0.4, 0.6, 0.6])


def test_histogram_binning_bins_hold_equal_shares_and_keep_the_order_of_bins():
    confidence, outcome = random_forecasts(1000, seed=9)
    binning = scratch.fit_histogram_binning(confidence, outcome, n_bins=8)
    bin_of = torch.bucketize(confidence, binning.inner_edges)
    assert torch.bincount(bin_of, minlength=8).tolist() == [125] * 8
    expected = (torch.bincount(bin_of, outcome, minlength=8) + 1) / (125 + 2)
    assert binning.frequency.tolist() == pytest.approx(expected.tolist())
    assert binning.frequency.diff().min() >= 0 and binning.frequency[-1] > 0.8   # outcome ~ confidence^2 rises
    assert set(binning(confidence).tolist()) <= set(binning.frequency.tolist())


def test_histogram_binning_fixes_a_miscalibrated_forecaster_on_fresh_data():
    confidence, outcome = random_forecasts(20_000, seed=10)                 # truth is confidence^2
    fresh_confidence, fresh_outcome = random_forecasts(20_000, seed=11)
    binning = scratch.fit_histogram_binning(confidence, outcome, n_bins=15)
    before = scratch.calibration_error(fresh_confidence, fresh_outcome)
    assert before > 0.1
    assert scratch.calibration_error(binning(fresh_confidence), fresh_outcome) < 0.02


def test_histogram_binning_validates():
    confidence, outcome = random_forecasts(10, seed=12)
    with pytest.raises(ValueError, match="n_bins"):
        scratch.fit_histogram_binning(confidence, outcome, n_bins=11)
    with pytest.raises(ValueError, match="n_bins"):
        scratch.fit_histogram_binning(confidence, outcome, n_bins=0)


# ----------------------------------------------------------------------------- focal loss
def test_focal_loss_with_gamma_zero_is_cross_entropy():
    generator = torch.Generator().manual_seed(13)
    logits, labels = torch.randn(20, 4, generator=generator), torch.randint(0, 4, (20,), generator=generator)
    assert scratch.focal_loss(logits, labels, 0.0) == pytest.approx(float(functional.cross_entropy(logits, labels)))


def test_focal_loss_hand_computed():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    p = [math.exp(2) / (math.exp(2) + 1), 1 / (1 + math.e)]
    expected = sum(-((1 - q) ** 2) * math.log(q) for q in p) / 2
    assert float(scratch.focal_loss(logits, labels, 2.0)) == pytest.approx(expected)
    assert float(scratch.focal_loss(logits, labels, 2.0)) < float(functional.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="gamma"):
        scratch.focal_loss(logits, labels, -1.0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("probs, labels, match", [
    (torch.tensor([0.5, 0.5]), torch.tensor([0]), "probs must have shape"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]), "labels must have shape"),
    (torch.tensor([[1.5, -0.5]]), torch.tensor([0]), "rows of probabilities"),
    (torch.tensor([[0.5, 0.4]]), torch.tensor([0]), "sum to 1"),
    (torch.tensor([[float("nan"), 0.5]]), torch.tensor([0]), "rows of probabilities"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([2]), r"\[0, 1\]"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([-1]), "class index"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0.0]), "class index"),
    (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "at least one"),
])
def test_probability_functions_validate(probs, labels, match):
    for fn in (scratch.top_label, scratch.expected_calibration_error, scratch.classwise_calibration_error):
        with pytest.raises(ValueError, match=match):
            fn(probs, labels)


@pytest.mark.parametrize("confidence, outcome, match", [
    (torch.tensor([[0.5]]), torch.tensor([[1.0]]), "same shape"),
    (torch.tensor([0.5, 0.6]), torch.tensor([1.0]), "same shape"),
    (torch.zeros(0), torch.zeros(0), "same shape"),
    (torch.tensor([1.2]), torch.tensor([1.0]), r"\[0, 1\]"),
    (torch.tensor([1]), torch.tensor([1.0]), "floating-point"),
    (torch.tensor([0.5]), torch.tensor([0.5]), "outcome"),
])
def test_forecast_functions_validate(confidence, outcome, match):
    for fn in (scratch.reliability_bins, scratch.calibration_error, scratch.brier_decomposition,
               scratch.fit_histogram_binning):
        with pytest.raises(ValueError, match=match):
            fn(confidence, outcome)


def test_binning_arguments_are_validated():
    confidence, outcome = random_forecasts(10, seed=14)
    with pytest.raises(ValueError, match="n_bins"):
        scratch.calibration_error(confidence, outcome, 0)
    with pytest.raises(ValueError, match="scheme"):
        scratch.calibration_error(confidence, outcome, 5, "quantile")
