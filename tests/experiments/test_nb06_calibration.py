"""Notebook 06's experiment modules: measurements, studies, figures, explorers and exercise checkers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional

from helpers import data as datasets
from helpers import widgets
from helpers.experiments import nb06_calibration as lab
from helpers.experiments import nb06_calibration_figures as figures
from helpers.scratch import calibration as scratch


@pytest.fixture(scope="module")
def tiny_run():
    """A small MNIST-1D model, trained briefly, and its calibration."""
    data = datasets.mnist1d(n_train=300, seed=0, device="cpu")
    tracker = lab.CalibrationTracker(data.x_val, data.y_val)
    model, history = lab.train_classifier(data, width=32, epochs=3, seed=0, callbacks=[tracker])
    return data, model, history, lab.calibrate(model, data)


def logits_and_labels(n: int = 400, sharpen: float = 3.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    probs, labels = lab.synthetic_forecasts(n, sharpen=1.0, seed=seed)
    return probs.log() * sharpen, labels


# ----------------------------------------------------------------------------- training and measuring
def test_tracker_records_initialisation_and_every_epoch(tiny_run):
    _, _, history, run = tiny_run
    record = history.extra["calibration"]
    assert len(record["ece"]) == len(history.epoch) == 4 and history.epoch[0] == 0
    assert record["nll"][0] == pytest.approx(history.val_loss[0], rel=1e-4)
    assert record["error"][-1] == pytest.approx(1 - history.val_acc[-1], abs=1e-6)
    assert run.temperature > 0 and run.before["accuracy"] == run.after["accuracy"]


def test_train_classifier_takes_one_loss_and_validates():
    data = datasets.digits(device="cpu")
    with pytest.raises(ValueError, match="pick one"):
        lab.train_classifier(data, label_smoothing=0.1, focal_gamma=2.0)
    with pytest.raises(ValueError, match="focal_gamma"):
        lab.train_classifier(data, focal_gamma=-1.0)
    _, focal = lab.train_classifier(data, width=8, epochs=1, focal_gamma=2.0)
    _, plain = lab.train_classifier(data, width=8, epochs=1)
    assert focal.train_loss[0] == plain.train_loss[0] and focal.train_loss[1] != plain.train_loss[1]


def test_summary_matches_direct_formulas():
    logits, labels = logits_and_labels()
    probs = logits.softmax(-1)
    report = lab.summary(probs, labels)
    onehot = functional.one_hot(labels, 10).double()
    assert report["nll"] == pytest.approx(float(functional.cross_entropy(logits, labels)), rel=1e-5)
    assert report["brier"] == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()))
    assert report["accuracy"] == pytest.approx(float((probs.argmax(-1) == labels).double().mean()))
    assert report["ece"] == pytest.approx(scratch.expected_calibration_error(probs, labels))
    assert list(lab.readable(report)) == ["accuracy", "mean confidence", "ECE", "NLL (nats)", "Brier"]


def test_brier_parts_add_up_over_classes():
    probs, labels = lab.synthetic_forecasts(500, seed=1)
    parts = lab.brier_parts(probs, labels)
    onehot = functional.one_hot(labels, 10).double()
    assert parts["brier"] == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()))
    rates = onehot.mean(0)
    assert parts["uncertainty"] == pytest.approx(float((rates * (1 - rates)).sum()))


def test_top_group_and_top_label_log_loss_hand_computed():
    confidence = torch.tensor([0.9, 0.85, 0.5, 0.2], dtype=torch.float64)
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert lab.top_group(confidence, correct, 0.8) == {"count": 2, "confidence": pytest.approx(0.875), "accuracy": 0.5}
    assert math.isnan(lab.top_group(confidence, correct, 0.95)["accuracy"])
    expected = -(math.log(0.9) + math.log(0.15) + math.log(0.5) + math.log(0.8)) / 4
    assert lab.top_label_log_loss(confidence, correct) == pytest.approx(expected)


def test_recalibration_table_keeps_predictions_where_it_says_so(tiny_run):
    data, _, _, run = tiny_run
    rows = {row["method"]: row for row in lab.recalibration_table(run, binning_bins=5)}
    assert set(rows) == {"as trained", "temperature scaling", "top-label histogram binning",
                         "one-vs-rest histogram binning"}
    for name in ("as trained", "temperature scaling", "top-label histogram binning"):
        assert rows[name]["predictions changed"] == 0 and rows[name]["accuracy"] == rows["as trained"]["accuracy"]
    assert rows["as trained"]["ECE"] == pytest.approx(run.before["ece"])
    assert rows["temperature scaling"]["ECE"] == pytest.approx(run.after["ece"])


def test_one_vs_rest_binning_returns_probabilities():
    probs, labels = lab.synthetic_forecasts(600, seed=2)
    binned = lab.one_vs_rest_binning(probs[:300], labels[:300], probs[300:], n_bins=5)
    assert binned.shape == (300, 10) and torch.allclose(binned.sum(-1), torch.ones(300, dtype=torch.float64))


def test_base_rates_and_scrambled_alternatives():
    labels = torch.tensor([0, 0, 1, 2])
    assert lab.base_rate_probs(labels, 3, 4).tolist() == [[0.5, 0.25, 0.25, 0.0]] * 3
    probs, labels = lab.synthetic_forecasts(300, seed=3)
    scrambled = lab.scrambled_alternatives(probs, seed=1)
    assert torch.equal(scrambled.argmax(-1), probs.argmax(-1)) and torch.equal(scrambled.max(-1).values,
                                                                                probs.max(-1).values)
    assert torch.equal(scrambled.sort(-1).values, probs.sort(-1).values) and not torch.equal(scrambled, probs)
    rows = {row["predictor"]: row for row in lab.sharpness_table({"model": probs, "scrambled": scrambled}, labels)}
    assert rows["model"]["ECE (top label)"] == rows["scrambled"]["ECE (top label)"]
    assert rows["scrambled"]["class-wise ECE"] > rows["model"]["class-wise ECE"]


# ----------------------------------------------------------------------------- shift, segments, decisions
def test_add_noise_is_reproducible_and_scaled():
    x = torch.zeros(2000, 4)
    assert torch.equal(lab.add_noise(x, 0.5, 1), lab.add_noise(x, 0.5, 1))
    assert float(lab.add_noise(x, 0.5, 1).std()) == pytest.approx(0.5, rel=0.05)
    assert torch.equal(lab.add_noise(x, 0.0, 1), x)
    with pytest.raises(ValueError, match="sigma"):
        lab.add_noise(x, -1.0, 0)


def test_shift_and_segment_studies(tiny_run):
    data, model, _, run = tiny_run
    shifted = lab.shifted_logits(model, data, [0.0, 1.0])
    assert torch.equal(shifted[0.0][0], run.val_logits)
    rows = lab.shift_study(run, shifted)
    assert [row["noise"] for row in rows] == [0.0, 1.0]
    assert rows[0]["ECE, T from clean validation"] == pytest.approx(run.after["ece"])
    segments = lab.segment_study(run, shifted[1.0])
    assert len(segments["rows"]) == 4 and 0 <= segments["pooled ECE"] <= 1
    own = [row for row in segments["rows"] if row["segment"] == "clean" and row["temperature"] == "T per segment"]
    assert own[0]["T"] == pytest.approx(run.temperature)
    with pytest.raises(ValueError, match="sigmas"):
        lab.shifted_logits(model, data, [])


def test_coverage_accuracy_hand_computed():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    out = lab.coverage_accuracy(probs, labels, [0.5, 0.7, 0.85, 0.95])
    assert out["coverage"].tolist() == [1.0, 0.5, 0.25, 0.0]
    assert out["accuracy"][:3].tolist() == [0.5, 0.5, 1.0] and math.isnan(out["accuracy"][3])
    assert out["confidence"][:3].tolist() == pytest.approx([0.7125, 0.85, 0.9])
    with pytest.raises(ValueError, match="threshold"):
        lab.coverage_accuracy(probs, labels, [1.5])


def test_decision_cost_and_tuned_threshold_hand_computed():
    confidence = torch.tensor([0.95, 0.9, 0.7, 0.6, 0.4], dtype=torch.float64)
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert lab.decision_cost(confidence, correct, 0.8, 0.2) == pytest.approx((0 + 1 + 0.2 * 3) / 5)
    assert lab.decision_cost(confidence, correct, 1.5, 0.2) == pytest.approx(0.2)
    assert lab.decision_cost(confidence, correct, 0.0, 0.2) == pytest.approx(2 / 5)
    assert lab.tuned_threshold(confidence, correct, 0.2) == pytest.approx(0.95)   # act on the one sure case
    assert lab.tuned_threshold(confidence, correct, 0.9) == pytest.approx(0.4)    # review is dear: act on all
    assert lab.tuned_threshold(confidence, torch.zeros(5, dtype=torch.float64), 0.2) == 1.5   # all wrong: none
    with pytest.raises(ValueError, match="review_cost"):
        lab.decision_cost(confidence, correct, 0.5, 1.5)


def test_cost_study_rows_match_direct_costs(tiny_run):
    _, _, _, run = tiny_run
    rows = lab.cost_study(run, [0.2, 0.5])
    assert [row["review cost"] for row in rows] == [0.2, 0.5] and rows[0]["Bayes threshold 1 - r"] == 0.8
    after = scratch.top_label((run.test_logits.double() / run.temperature).softmax(-1), run.test_labels)
    assert rows[0]["after scaling, at 1 - r"] == pytest.approx(lab.decision_cost(*after, 0.8, 0.2))
    assert all(row["review every case"] == row["review cost"] for row in rows)
    with pytest.raises(ValueError, match="review_costs"):
        lab.cost_study(run, [])
    with pytest.raises(ValueError, match="review_cost"):
        lab.cost_study(run, [1.0])


def test_confidence_auroc_matches_pairwise_counting():
    generator = torch.Generator().manual_seed(3)
    confidence = torch.randint(0, 8, (60,), generator=generator).double() / 8   # ties on purpose
    correct = torch.bernoulli(torch.full((60,), 0.6), generator=generator).double()
    right, wrong = confidence[correct == 1], confidence[correct == 0]
    pairs = (right[:, None] > wrong[None, :]).double() + 0.5 * (right[:, None] == wrong[None, :]).double()
    assert lab.confidence_auroc(confidence, correct) == pytest.approx(float(pairs.mean()))
    assert lab.confidence_auroc(correct * 0.5 + 0.4, correct) == 1.0
    assert math.isnan(lab.confidence_auroc(confidence, torch.ones(60, dtype=torch.float64)))


# ----------------------------------------------------------------------------- noise in the ECE estimate
def test_synthetic_forecasts_are_calibrated_unless_sharpened():
    assert scratch.expected_calibration_error(*lab.synthetic_forecasts(100_000, seed=4)) < 0.01
    assert scratch.expected_calibration_error(*lab.synthetic_forecasts(100_000, sharpen=2.0, seed=4)) > 0.1


def test_noise_floor_shrinks_with_examples():
    floor = lab.ece_noise_floor([200, 2000, 50_000], repeats=3)
    assert floor["mean"][0] > floor["mean"][1] > floor["mean"][2] and floor["mean"][2] < 0.01


def test_noise_check_separates_a_calibrated_from_a_sharpened_forecaster():
    calibrated = scratch.top_label(*lab.synthetic_forecasts(2000, seed=8))
    sharpened = scratch.top_label(*lab.synthetic_forecasts(2000, sharpen=2.0, seed=8))
    fair, unfair = lab.noise_check(*calibrated, n_draws=100), lab.noise_check(*sharpened, n_draws=100)
    assert fair["p-value"] > 0.05 and unfair["p-value"] == pytest.approx(1 / 101)
    assert fair["ECE"] == pytest.approx(scratch.calibration_error(*calibrated))
    null = scratch.resampled_errors(calibrated[0], 100, seed=0)
    assert fair["ECE if calibrated: mean"] == pytest.approx(float(null.mean()))
    assert fair["p-value"] == pytest.approx((1 + int((null >= fair["ECE"] - 1e-12).sum())) / 101)


def test_bootstrap_replicates_match_direct_computation():
    confidence, correct = scratch.top_label(*lab.synthetic_forecasts(50, seed=5))
    out = lab.bootstrap_ece(confidence, correct, n_boot=20, seed=0)
    draws = torch.randint(0, 50, (20, 50), generator=torch.Generator().manual_seed(0))
    direct = np.array([scratch.calibration_error(confidence[d], correct[d]) for d in draws])
    assert out["replicate mean"] == pytest.approx(direct.mean())
    assert out["interval low"] == pytest.approx(np.quantile(direct, 0.05))
    assert out["interval high"] == pytest.approx(np.quantile(direct, 0.95))
    assert out["bias-corrected"] == pytest.approx(2 * out["ECE"] - direct.mean())
    assert out == lab.bootstrap_ece(confidence, correct, n_boot=20, seed=0)
    with pytest.raises(ValueError, match="n_boot"):
        lab.bootstrap_ece(confidence, correct, n_boot=10**6)


def test_debiasing_study_reports_progress_and_errors():
    seen = []
    out = lab.debiasing_study(n=100, repeats=4, n_boot=50, report=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert out["mean absolute error, plain"] >= abs(out["mean error, plain"]) - 1e-12
    assert 0 <= out["interval coverage"] <= 1 and out["true ECE"] > 0.03


# ----------------------------------------------------------------------------- exercise checkers
def test_check_hand_ece_never_raises(capsys):
    assert lab.check_hand_ece(None) is False and "Not attempted" in capsys.readouterr().out
    assert lab.check_hand_ece(0.2) is False and "Hint" in capsys.readouterr().out
    assert lab.check_hand_ece("0.132") is False
    assert lab.check_hand_ece(0.132) is True and "Correct" in capsys.readouterr().out


def test_check_fitted_on_test_never_raises(capsys):
    confidence, correct = scratch.top_label(*lab.synthetic_forecasts(500, sharpen=2.0, seed=6))

    def stub(c, o):
        raise NotImplementedError

    def right(c, o):
        return scratch.calibration_error(scratch.fit_histogram_binning(c, o, 10)(c), o)

    assert lab.check_fitted_on_test(stub, confidence, correct, 0.05) is False
    assert "Not attempted" in capsys.readouterr().out
    assert lab.check_fitted_on_test(lambda c, o: 0.5, confidence, correct, 0.05) is False
    assert lab.check_fitted_on_test(lambda c, o: 1 / 0, confidence, correct, 0.05) is False
    assert lab.check_fitted_on_test(right, confidence, correct, 0.05) is True


# ----------------------------------------------------------------------------- figures and explorers
def test_figures_are_titled_labelled_and_validate(tiny_run):
    data, model, _, run = tiny_run
    pair = scratch.top_label(run.test_logits.softmax(-1), data.y_test)
    shifted = lab.shift_study(run, lab.shifted_logits(model, data, [0.0, 0.5]))
    curves = {"model": lab.coverage_accuracy(run.test_logits.softmax(-1), data.y_test, [0.2, 0.5, 0.8])}
    made = [figures.reliability_diagrams({"a": pair, "b": pair}, "Two"), figures.confidence_histogram(*pair, "Hist"),
            figures.epoch_curves(tiny_run[2].extra["calibration"]), figures.shift_plot(shifted),
            figures.nll_temperature_plot((run.val_logits, data.y_val), (run.test_logits, data.y_test), [0.5, 1], 1.0),
            figures.sweep_bars({"model": run}, "Sweep"), figures.coverage_plot(curves, "Coverage", mark=0.5),
            figures.noise_floor_plot(lab.ece_noise_floor([50, 100], repeats=2))]
    for fig in made:
        drawn = [ax for ax in fig.axes if ax.has_data()]
        assert drawn and all(ax.get_ylabel() for ax in drawn) and fig.legends
    with pytest.raises(ValueError, match="panels"):
        figures.reliability_diagrams({}, "None")
    with pytest.raises(ValueError, match="record"):
        figures.epoch_curves({"ece": []})


def test_reliability_bars_are_shaded_and_labelled_by_count():
    confidence = torch.tensor([0.15] + [0.85] * 9, dtype=torch.float64)
    correct = torch.tensor([0.0] + [1.0] * 9, dtype=torch.float64)
    fig = figures.reliability_diagrams({"x": (confidence, correct)}, "Counts", n_bins=5)
    ax = fig.axes[0]
    alphas = sorted(patch.get_facecolor()[3] for patch in ax.patches)
    assert len(alphas) == 2 and alphas[0] < 0.3 and alphas[-1] == pytest.approx(1.0)
    assert sorted(text.get_text() for text in ax.texts) == ["1", "9"]


def test_temperature_explorer_numbers_and_validation():
    logits, labels = logits_and_labels()
    logits, labels = logits_and_labels(n=5000)
    fig, numbers = figures.explore_temperature(logits, labels, temperature=3.0, n_bins=10)
    expected = scratch.expected_calibration_error((logits / 3).softmax(-1), labels, 10)
    assert numbers["ECE (10 bins)"] == pytest.approx(expected)
    assert numbers["accuracy"] == pytest.approx(float((logits.argmax(-1) == labels).double().mean()))
    assert numbers["on average"].startswith("confidence matches")
    assert figures.explore_temperature(logits, labels, 1.0)[1]["on average"] == "over-confident"
    assert figures.explore_temperature(logits, labels, 9.0)[1]["on average"] == "under-confident"
    assert all(isinstance(v, str) or math.isfinite(v) for v in numbers.values())
    with pytest.raises(ValueError, match="temperature"):
        figures.explore_temperature(logits, labels, temperature=11.0)
    with pytest.raises(ValueError, match="n_bins"):
        figures.explore_temperature(logits, labels, n_bins=4)


def test_bins_explorer_keeps_its_lower_bound_and_a_minimum_span_in_view():
    confidence, correct = scratch.top_label(*lab.synthetic_forecasts(1000, seed=7))
    fig, numbers = figures.explore_bins(confidence, correct, n_bins=12, scheme="equal-mass")
    assert numbers["ECE"] == pytest.approx(scratch.calibration_error(confidence, correct, 12, "equal-mass"))
    assert numbers["lower bound |mean confidence - accuracy|"] <= numbers["ECE"]
    right = fig.axes[1]
    low, high = right.get_ylim()
    assert low == 0 and high >= 0.1
    with pytest.raises(ValueError, match="scheme"):
        figures.explore_bins(confidence, correct, scheme="other")
    with pytest.raises(ValueError, match="n_bins"):
        figures.explore_bins(confidence, correct, n_bins=31)


def test_binning_curves_put_a_calibrated_model_inside_its_band():
    confidence, correct = scratch.top_label(*lab.synthetic_forecasts(1000, seed=9))
    curves = figures.binning_curves(confidence, correct, "equal-width", n_draws=50)
    assert curves["bins"].tolist() == list(figures.EXPLORER_BINS)
    assert curves["model"][3] == pytest.approx(scratch.calibration_error(confidence, correct, 8))
    assert np.all(curves["calibrated low"] <= curves["calibrated mean"])
    assert np.all(curves["calibrated mean"] <= curves["calibrated high"])
    assert curves["calibrated mean"][-1] > 1.5 * curves["calibrated mean"][0]   # more bins, more noise
    with pytest.raises(ValueError, match="scheme"):
        figures.binning_curves(confidence, correct, "other")
    _, numbers = figures.explore_bins(confidence, correct, 5, curves_by_scheme={"equal-width": curves})
    assert numbers["ECE if calibrated (mean of resampled outcomes)"] == pytest.approx(curves["calibrated mean"][0])


def test_reliability_at_own_values_draws_one_bar_per_output():
    confidence = torch.tensor([0.2] * 5 + [0.7] * 10 + [0.9] * 5, dtype=torch.float64)
    correct = torch.tensor([0.0] * 4 + [1.0] + [1.0] * 7 + [0.0] * 3 + [1.0] * 5, dtype=torch.float64)
    fig = figures.reliability_diagrams({"raw": (confidence, correct), "binned": (confidence, correct)}, "Values",
                                       n_bins=15, at_own_values=["binned"])
    assert len(fig.axes[1].patches) == 3
    assert sorted(text.get_text() for text in fig.axes[1].texts) == ["10", "5", "5"]
    assert "error over them = 0.025" in fig.axes[1].get_title()                # 5 examples 0.1 off, of 20
    with pytest.raises(ValueError, match="at_own_values"):
        figures.reliability_diagrams({"raw": (confidence, correct)}, "Values", at_own_values=["other"])
    with pytest.raises(ValueError, match="distinct values"):
        figures.reliability_diagrams({"raw": (torch.linspace(0, 1, 60), torch.ones(60))}, "Many",
                                     at_own_values=["raw"])


def test_explorers_draw_at_native_size_and_the_temperature_slider_returns_to_one():
    logits, labels = logits_and_labels()
    slider = widgets.Slider(0.25, 8.0, 0.02, 1.0, log=True)
    low, high = slider.log_grid()
    assert min(abs(low + k * 0.02) for k in range(round((high - low) / 0.02) + 1)) < 1e-9
    explorer = widgets.explore(lambda temperature: figures.explore_temperature(logits, labels, temperature),
                               temperature=slider)
    _, width = widgets.figure_png(figures.explore_temperature(logits, labels)[0])
    assert explorer.image.width == str(width) and width <= 700
    explorer.controls["temperature"].value = 2.0
    explorer.controls["temperature"].value = 1.0
    assert explorer.numbers["temperature T"] == 1.0 and explorer.numbers["on average"] == "over-confident"
    assert all(label in widgets.LABELS.values() for label in ("temperature T", "bins"))
