"""Notebook 02's experiment modules: runners, explorers, exercise checkers and argument validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers.data import mnist1d
from helpers.experiments import nb02_optimizers_geometry as geometry
from helpers.experiments import nb02_optimizers_mechanics as mechanics
from helpers.experiments import nb02_optimizers_stability as stability
from helpers.experiments import nb02_optimizers_training as training
from helpers.scratch import optimizers
from helpers.train import History
from helpers.widgets import Choice, Slider, explore


@pytest.fixture(scope="module")
def small_data():
    return mnist1d(n_train=200, num_samples=500, device="cpu")


def history(val_acc, train_loss=None) -> History:
    """A hand-written history: epoch 0 first, as ``fit`` logs it."""
    n = len(val_acc)
    train_loss = train_loss or [1.0] * n
    return History(epoch=list(range(n)), train_loss=list(train_loss), train_acc=[0.0] * n, val_loss=[1.0] * n,
                   val_acc=list(val_acc), seconds=[float(i) for i in range(n)], lr=[0.1] * n)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def test_optimal_settings_match_the_closed_forms():
    best = geometry.optimal_settings(100.0)
    assert math.isclose(best["gd_rate"], 99 / 101) and math.isclose(best["momentum_rate"], 9 / 11)
    assert math.isclose(best["gd_lr"], 2 / 101) and math.isclose(best["momentum_beta"], (9 / 11) ** 2)
    with pytest.raises(ValueError, match=r"^kappa must be"):
        geometry.optimal_settings(0.5)


def test_iteration_counts_follow_the_predicted_rates():
    rows = geometry.convergence_table((10, 100))
    for row in rows:
        assert row["momentum iterations"] < row["GD iterations"]
        assert abs(row["GD iterations"] - row["GD predicted"]) <= 2
    assert rows[1]["speed-up"] > rows[0]["speed-up"]
    assert geometry.iterations_to_tolerance(10, "gd", max_iters=5) == 5
    with pytest.raises(ValueError, match=r"^method must be one of"):
        geometry.iterations_to_tolerance(10, "adam")


def test_trajectory_converges_and_stops_when_it_diverges():
    path, losses = geometry.trajectory(geometry.quadratic(10), (1.0, 1.0), "momentum", 0.05, 200)
    assert path.shape == (201, 2) and losses.shape == (201,) and losses[-1] < 1e-6 * losses[0]
    path, losses = geometry.trajectory(geometry.quadratic(100), (1.0, 1.0), "sgd", 5.0, 500)
    assert len(path) < 501 and not losses[-1] < geometry.DIVERGED
    with pytest.raises(ValueError, match=r"^optimizer must be one of"):
        geometry.trajectory(geometry.rosenbrock, (0.0, 0.0), "adamw", 0.1, 10)


def test_tuned_run_skips_a_diverging_rate_and_returns_the_best_run():
    lr, (path, losses) = geometry.tuned_run(geometry.quadratic(10), (1.0, 1.0), "sgd", [0.01, 0.15, 5.0], 50)
    assert lr == 0.15 and losses[-1] < 1e-3 and len(path) == 51


def test_explorer_predicates_grey_out_controls_that_do_not_apply():
    assert geometry.uses_momentum({"optimizer": "adam"}) and not geometry.uses_momentum({"optimizer": "sgd"})
    assert not geometry.uses_momentum({"optimizer": "rmsprop"})
    assert geometry.uses_beta2({"optimizer": "rmsprop"}) and not geometry.uses_beta2({"optimizer": "momentum"})
    assert geometry.uses_kappa({"surface": "quadratic"}) and not geometry.uses_kappa({"surface": "rosenbrock"})
    explorer = explore(geometry.explore_trajectory, optimizer=Choice(list(geometry.PATH_OPTIMIZERS), value="adam"),
                       surface=Choice(list(geometry.SURFACES)),
                       momentum=Slider(0.0, 0.99, 0.01, 0.9, enabled_if=geometry.uses_momentum),
                       beta2=Slider(0.9, 0.999, 0.001, 0.999, enabled_if=geometry.uses_beta2),
                       kappa=Slider(1, 200, 1, 20, enabled_if=geometry.uses_kappa), steps=Slider(10, 50, 10, 20))
    assert not explorer.controls["momentum"].disabled and explorer.controls["beta2"].readout_format == ".3f"
    explorer.controls["optimizer"].value = "sgd"
    explorer.controls["surface"].value = "rosenbrock"
    assert explorer.controls["momentum"].disabled and explorer.controls["beta2"].disabled
    assert explorer.controls["kappa"].disabled


def test_explore_trajectory_reports_numbers_and_says_when_it_diverged():
    fig, numbers = geometry.explore_trajectory("adam", "rosenbrock", lr=0.05, steps=50)
    assert set(numbers) == {"final loss", "distance to minimum"} and len(fig.axes) == 2
    fig, numbers = geometry.explore_trajectory("sgd", "quadratic", lr=0.5, kappa=100, steps=300)
    assert "diverged" in numbers["note"] and fig.axes[0].has_data()
    for bad, message in ((dict(kappa=0.5), "kappa"), (dict(optimizer="lbfgs"), "optimizer"),
                         (dict(surface="saddle"), "surface"), (dict(steps=0), "steps")):
        with pytest.raises(ValueError, match=f"^{message} must be"):
            geometry.explore_trajectory(**bad)


def test_geometry_figures_are_drawn():
    runs = {"sgd": geometry.trajectory(geometry.quadratic(5), (1.0, 1.0), "sgd", 0.1, 5)}
    assert len(geometry.plot_trajectories("quadratic", runs, kappa=5.0).axes) == 2
    assert geometry.plot_error_curves(10.0, 30).axes[0].has_data()


# --------------------------------------------------------------------------------------------
# mechanics
# --------------------------------------------------------------------------------------------
def test_difference_from_torch_optim_is_round_off_for_every_case():
    table = mechanics.match_table(steps=5)
    assert {row["optimizer"] for row in table} == set(mechanics.NAMES)
    assert max(row["largest difference after 5 steps"] for row in table) < 1e-12


def test_difference_from_torch_optim_sees_a_wrong_update(monkeypatch):
    class DoubledGradient(optimizers.SGD):
        def update(self, w, g, group, state):
            super().update(w, 2 * g, group, state)

    monkeypatch.setattr(optimizers, "SGD", DoubledGradient)
    assert mechanics.difference_from_torch_optim("SGD", steps=3, lr=0.05) > 1e-4
    with pytest.raises(ValueError, match=r"^name must be one of"):
        mechanics.difference_from_torch_optim("Lion")


def test_state_memory_counts_the_tensors_each_optimizer_keeps():
    rows = {row["optimizer"]: row for row in mechanics.state_memory(nn.Linear(20, 10))}
    scratch = {name: row["from scratch state / parameters"] for name, row in rows.items()}
    assert scratch == {"sgd": 0.0, "momentum": 1.0, "rmsprop": 1.0, "adam": 2.0, "adamw": 2.0}
    assert 2.0 <= rows["adam"]["torch.optim state / parameters"] < 2.05


def test_first_step_sizes_by_hand():
    sizes = mechanics.first_step_sizes((1e-5, 1.0, 1e3), lr=0.01, eps_values=(1e-8, 1e-3))
    assert np.allclose(sizes["SGD"], [1e-7, 1e-2, 10.0])
    assert np.allclose(sizes["Adam, eps 1e-08"], 0.01, rtol=1e-2)
    assert math.isclose(sizes["Adam, eps 0.001"][0], 0.01 * 1e-5 / (1e-5 + 1e-3), rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"^grad_scales must be"):
        mechanics.first_step_sizes((0.0,))
    assert mechanics.plot_first_steps((1e-5, 1.0, 1e3), sizes, 0.01).axes[0].has_data()


def test_average_step_under_noise_follows_the_signal_to_noise_ratio():
    progress = mechanics.average_step_under_noise((0.0, 1.0, 10.0), steps=200, replicas=300)
    assert np.allclose(progress["SGD"], 1.0, atol=0.1)
    assert np.allclose(progress["Adam"], progress["signal-to-noise 1/sqrt(1+sigma^2)"], atol=0.05)
    assert progress["Adam"][2] < 0.2
    assert mechanics.plot_average_step((0.1, 1.0, 10.0), mechanics.average_step_under_noise(
        (0.1, 1.0, 10.0), steps=20, replicas=5)).axes[0].has_data()


def test_shrinkage_at_zero_gradient_by_hand():
    shrink = mechanics.shrinkage_at_zero_gradient((0.01, 1.0, 100.0), lr=1e-3, weight_decay=0.1, steps=100)
    assert np.allclose(shrink["AdamW"], 100 * (1 - (1 - 1e-4) ** 100), rtol=1e-9)
    assert shrink["Adam + L2"][0] > 50 > shrink["Adam + L2"][2]
    assert math.isclose(shrink["Adam + L2"][2], 100 * 100 * 1e-3 / 100, rel_tol=1e-3)   # 100 steps of lr on 100
    with pytest.raises(ValueError, match=r"^weight_decay must be"):
        mechanics.shrinkage_at_zero_gradient(weight_decay=0.0)


def test_shrinkage_under_noise_depends_on_the_noise_only_with_l2():
    shrink = mechanics.shrinkage_under_noise((1e-3, 10.0), steps=300, replicas=100)
    assert shrink["Adam + L2"][0] > 10 * shrink["Adam + L2"][1]
    expected = 100 * (1 - (1 - 1e-4) ** 300)
    assert np.allclose(shrink["AdamW"], expected, rtol=0.3)
    fig = mechanics.plot_shrinkage((0.01, 1.0), {"Adam + L2": np.ones(2), "AdamW": np.ones(2)}, (1e-3, 10.0), shrink)
    assert len(fig.axes) == 2


def test_rare_tokens_favour_adam_only_when_frequencies_are_skewed():
    grid = {"momentum": [0.3], "adam": [0.1]}
    zipf = mechanics.rare_token_comparison(grid, vocabulary=500, steps=200, zipf=True)
    uniform = mechanics.rare_token_comparison(grid, vocabulary=500, steps=200, zipf=False)
    assert zipf["momentum"]["final loss"] > 3 * zipf["adam"]["final loss"]
    assert uniform["momentum"]["final loss"] < 1.5 * uniform["adam"]["final loss"]
    assert set(zipf["adam"]) == {"lr", "frequent error", "rare error", "final loss"}
    with pytest.raises(ValueError, match=r"^optimizer must be one of"):
        mechanics.rare_token_errors("sgd", 0.1)


def _nesterov_right(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return w - lr * (grad + momentum * velocity), velocity


def _nesterov_heavy_ball(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return w - lr * velocity, velocity


def _rmsprop_right(w, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad ** 2
    return w - lr * grad / (square_avg.sqrt() + eps), square_avg


def _rmsprop_no_root(w, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad ** 2
    return w - lr * grad / (square_avg + eps), square_avg


def _stub(*args):
    raise NotImplementedError


def test_checkers_accept_right_answers_and_never_raise_on_wrong_ones(capsys):
    assert mechanics.check_nesterov(_nesterov_right) and mechanics.check_rmsprop(_rmsprop_right)
    assert "Correct" in capsys.readouterr().out
    assert not mechanics.check_nesterov(_nesterov_heavy_ball)
    assert "Hint" in capsys.readouterr().out
    assert not mechanics.check_rmsprop(_rmsprop_no_root)
    assert not mechanics.check_nesterov(_stub) and not mechanics.check_rmsprop(None)
    assert "Not attempted" in capsys.readouterr().out
    assert not mechanics.check_nesterov(lambda *args: 3.0)
    assert "pair of tensors" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def test_schedules_by_hand():
    total = 100
    assert np.allclose(training.schedule_curve("constant", total), 1.0)
    step = training.schedule_curve("step", total)
    assert step[49] == 1.0 and math.isclose(step[50], 0.1) and math.isclose(step[75], 0.01)
    cosine = training.schedule_curve("cosine", total)
    assert cosine[0] == 1.0 and math.isclose(cosine[50], 0.5) and cosine[-1] < 1e-3
    assert np.allclose(training.schedule_curve("linear", total), 1 - np.arange(total) / total)
    warmup = training.schedule_curve("warmup", total, warmup_fraction=0.2)
    assert math.isclose(warmup[0], 1 / 20) and warmup[19] == 1.0 and np.all(warmup[19:] == 1.0)
    warm_cosine = training.schedule_curve("warmup_cosine", total, warmup_fraction=0.2)
    assert int(np.argmax(warm_cosine)) == 19 and warm_cosine[20] == 1.0 and warm_cosine[-1] < 1e-3
    cycle = training.schedule_curve("one_cycle", total)
    assert math.isclose(cycle[0], 1 / 25) and cycle[30] == 1.0 and cycle[-1] < 1e-3
    wsd = training.schedule_curve("wsd", total)
    assert math.isclose(wsd[0], 0.1) and np.all(wsd[9:80] == 1.0) and math.isclose(wsd[90], 0.5)
    with pytest.raises(ValueError, match=r"^schedule must be one of"):
        training.lr_multiplier("exponential", 10)
    assert len(training.plot_schedules(50).axes) == len(training.SCHEDULES)


def test_best_lr_picks_the_highest_final_accuracy_not_an_end_of_the_grid():
    sweep = {0.001: history([0.1, 0.2]), 0.01: history([0.1, 0.5]), 0.1: history([0.1, 0.3])}
    assert training.best_lr(sweep) == 0.01 and not training.at_edge(sweep)
    sweep[1.0] = history([0.1, 0.6])
    assert training.best_lr(sweep) == 1.0 and training.at_edge(sweep)
    with pytest.raises(ValueError, match=r"^sweep must hold"):
        training.best_lr({})


def test_curve_summaries_by_hand():
    fast, slow = history([0.1, 0.5, 0.7, 0.8]), history([0.1, 0.2, 0.4, 0.8])
    assert math.isclose(training.curve_gap(fast, slow), (0.3 + 0.3 + 0.0) / 3)
    race = training.race(fast, slow, early_epoch=1)
    assert race["adam early"] == 0.5 and race["sgd early"] == 0.2 and math.isclose(race["mean gap"], 0.2)
    with pytest.raises(ValueError, match=r"^early_epoch must be"):
        training.race(fast, slow, early_epoch=9)


def test_training_runs_use_the_schedule_and_report_progress(small_data):
    seen = []
    run = training.train_on_mnist1d("mlp", small_data, "adam", 0.01, 2, schedule="cosine", batch_size=100,
                                    progress=seen.append)
    assert run.epoch == [0, 1, 2] and run.lr[1] == pytest.approx(0.005, rel=1e-6)
    assert seen[-1] == 1.0 and len(seen) == 4 and seen == sorted(seen)
    again = training.train_on_mnist1d("mlp", small_data, "adam", 0.01, 2, schedule="cosine", batch_size=100,
                                      progress=False)
    assert again.val_acc == run.val_acc
    sweep = training.lr_sweep("cnn", small_data, "momentum", [0.01, 0.1], 1, progress=False)
    assert set(sweep) == {0.01, 0.1}
    with pytest.raises(ValueError, match=r"^kind must be one of"):
        training.build_model("rnn", small_data)


def test_decay_grid_shape_and_progress(small_data):
    calls = []
    grid = training.decay_grid(small_data, "adamw", [1e-3, 1e-2], [0.0, 1.0], epochs=1, progress=calls.append)
    assert grid.shape == (2, 2) and np.all((grid >= 0) & (grid <= 1)) and calls[-1] == 1.0
    assert len(training.plot_grids({"adam": grid, "adamw": grid}, [1e-3, 1e-2], [0.0, 1.0]).axes) >= 2
    with pytest.raises(ValueError, match=r"^optimizer must be one of"):
        training.decay_grid(small_data, "sgd", [0.1], [0.0], 1)


def test_a_weight_before_layernorm_is_scale_invariant_and_grows_without_decay(small_data):
    ratios = training.scale_invariance(training.scale_invariant_model(small_data), small_data, factor=10.0)
    assert ratios["loss ratio"] == pytest.approx(1.0, abs=1e-5)
    assert ratios["gradient ratio"] == pytest.approx(0.1, rel=1e-3)
    free = training.decay_before_normalization(small_data, 0.0, lr=0.1, epochs=2, progress=False)
    decayed = training.decay_before_normalization(small_data, 0.5, lr=0.1, epochs=2, progress=False)
    assert free["norms"][-1] > free["norms"][0] > decayed["norms"][-1]
    assert len(free["turns"]) == 2 and np.all(free["turns"] > 0)
    assert len(training.plot_normalized_runs({"free": free, "decayed": decayed}).axes) == 2


def test_explore_training_reports_progress_numbers_and_a_dead_network(small_data):
    seen = []
    fig, numbers = training.explore_training("adamw", 1e-2, 1e-2, "warmup_cosine", epochs=6, data=small_data,
                                             progress=seen.append)
    assert 0 <= numbers["final validation accuracy"] <= 1 and seen[-1] == 1.0 and "note" not in numbers
    assert max(np.diff([0.0] + seen)) <= 0.1
    _, numbers = training.explore_training("adam", 1.0, 1e-5, "constant", model="mlp", epochs=3, data=small_data)
    assert "died" in numbers.get("note", "") or "diverged" in numbers.get("note", "")
    with pytest.raises(ValueError, match=r"^epochs must be"):
        training.explore_training(epochs=0, data=small_data)


# --------------------------------------------------------------------------------------------
# stability
# --------------------------------------------------------------------------------------------
def test_corrupt_inputs_scales_the_chosen_fraction_and_leaves_the_original(small_data):
    corrupted = stability.corrupt_inputs(small_data, fraction=0.05, scale=100.0)
    changed = (corrupted.x_train != small_data.x_train).any(dim=1)
    assert int(changed.sum()) == 10
    assert torch.allclose(corrupted.x_train[changed], 100 * small_data.x_train[changed])
    assert torch.equal(corrupted.x_val, small_data.x_val)


def test_range_test_finds_a_minimum_and_stops_after_the_blow_up(small_data):
    model = training.build_model("mlp", small_data)
    result = stability.lr_range_test(model, small_data, "momentum", steps=60, lr_max=100.0)
    assert result["suggested"] == pytest.approx(result["lr_at_min"] / 10)
    assert len(result["lrs"]) < 60 and result["losses"][-1] > 4 * result["losses"].min()
    assert stability.plot_range_test(result, {0.01: 0.3, 0.1: 0.5}).axes[0].has_data()
    assert stability.plot_range_test(result).axes[0].has_data()


def test_train_steps_clips_and_stops_at_an_overflow(small_data):
    run = stability.train_steps(training.build_model("mlp", small_data), small_data, "momentum", 0.1, 20,
                                clip_norm=1e-3)
    assert len(run["losses"]) == 20 and run["clipped fraction"] == 1.0
    free = stability.train_steps(training.build_model("mlp", small_data), small_data, "momentum", 0.1, 20)
    assert free["clipped fraction"] == 0.0
    with pytest.raises(ValueError, match=r"^clip_norm must be"):
        stability.train_steps(training.build_model("mlp", small_data), small_data, "sgd", 0.1, 5, clip_norm=0.0)


def test_loss_growth_by_hand():
    assert stability.loss_growth(np.array([2.0, 5.0, 1.0])) == 2.5
    assert stability.loss_growth(np.array([1.0, np.nan])) == math.inf
    with pytest.raises(ValueError, match=r"^losses must hold"):
        stability.loss_growth(np.array([]))
    fig = stability.plot_losses({"a": np.array([1.0, 2.0]), "b": np.array([1.0, np.inf])}, "t", reference=2.3)
    assert "overflowed at step 1" in fig.axes[0].get_legend().get_texts()[1].get_text()


def test_dead_unit_fractions_by_hand():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]))
        model[2].weight.fill_(-1.0)
        model[2].bias.zero_()
    assert stability.dead_unit_fractions(model, torch.randn(8, 3)) == [0.5, 1.0]
    assert model.training
    with pytest.raises(ValueError, match=r"^model must contain"):
        stability.dead_unit_fractions(nn.Linear(3, 2), torch.randn(2, 3))


def test_lr_pick_checker_never_raises(capsys):
    result = {"lr_at_min": 0.1}
    assert not stability.check_lr_pick(None, result)
    assert stability.check_lr_pick(0.01, result)
    assert not stability.check_lr_pick(0.09, result) and "edge" in capsys.readouterr().out
    assert not stability.check_lr_pick(1e-5, result) and "crawl" in capsys.readouterr().out
    assert not stability.check_lr_pick(-1.0, result) and "my_lr must be" in capsys.readouterr().out
