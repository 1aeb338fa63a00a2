"""Tests for helpers.optim: the from-scratch optimizers against torch.optim, the experiments'
building blocks, the explorers' pure functions, the checkers and argument validation."""
from __future__ import annotations

import inspect
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import optim as O  # noqa: E402
from helpers.data import mnist1d  # noqa: E402


@pytest.fixture(scope="module")
def small_data():
    return mnist1d(n_train=200, num_samples=500, device="cpu")


CASES = [
    ("SGD", {}),
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.7, dampening=0.3)),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, weight_decay=0.01)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9, centered=True)),
    ("RMSprop", dict(lr=1e-3, eps=1e-4, centered=True, momentum=0.5, weight_decay=0.1)),
    ("Adam", {}),
    ("Adam", dict(lr=1e-2, betas=(0.5, 0.9))),
    ("Adam", dict(lr=1e-2, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.0, 0.99), eps=1e-4, amsgrad=True)),
    ("AdamW", {}),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, betas=(0.8, 0.95))),
    ("AdamW", dict(lr=1e-2, weight_decay=0.0, amsgrad=True)),
]


@pytest.mark.parametrize("name,hyper", CASES)
def test_matches_torch(name, hyper):
    assert O.compare_with_torch(name, steps=30, seed=3, **hyper) < 1e-9


def test_maximize_matches_torch():
    for name in O.SCRATCH:
        assert O.compare_with_torch(name, steps=3, seed=1, maximize=True, lr=1e-3) < 1e-9


def test_match_table_covers_every_optimizer():
    rows = O.match_table(steps=5)
    assert {r["optimizer"] for r in rows} == set(O.SCRATCH)
    assert max(r["max |difference|"] for r in rows) < 1e-9


@pytest.mark.parametrize("name", list(O.SCRATCH))
def test_constructor_defaults_match_torch(name):
    ours = inspect.signature(O.SCRATCH[name].__init__).parameters
    ref = inspect.signature(O.TORCH[name].__init__).parameters
    for arg, param in ours.items():
        if arg in ("self", "params"):
            continue
        assert arg in ref, arg
        assert param.default == ref[arg].default, (arg, param.default, ref[arg].default)


def test_param_groups_and_closure():
    w1 = torch.ones(2, requires_grad=True)
    w2 = torch.ones(2, requires_grad=True)
    opt = O.SGD([{"params": [w1]}, {"params": [w2], "lr": 0.5}], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w1.sum() + w2.sum())
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert torch.allclose(w1, torch.full((2,), 0.9)) and torch.allclose(w2, torch.full((2,), 0.5))


def test_optimizer_validation():
    w = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        O.SGD(w, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        O.SGD(w, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(w, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        O.Adam(w, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas"):
        O.AdamW(w, betas=0.9)
    with pytest.raises(ValueError, match="alpha"):
        O.RMSprop(w, alpha=2.0)
    with pytest.raises(ValueError, match="optimizer"):
        O.make_optimizer("lion", w, 0.1)


def test_optimal_settings_and_iterations():
    best = O.optimal_settings(100.0)
    assert math.isclose(best["gd_rate"], 99 / 101)
    assert math.isclose(best["momentum_rate"], 9 / 11)
    rows = O.convergence_table((10, 100))
    for row in rows:
        assert row["momentum_iters"] < row["gd_iters"]
        assert abs(row["gd_iters"] - row["gd_predicted"]) <= 2
    with pytest.raises(ValueError, match="method"):
        O.iterations_to_tolerance(10, "adam")


def test_trajectory_converges_on_quadratic():
    path, losses = O.trajectory(O.quadratic(10), (1.0, 1.0), "momentum", 0.05, 200)
    assert path.shape == (201, 2) and losses[-1] < 1e-6 * losses[0]


def test_trajectory_stops_on_divergence():
    path, losses = O.trajectory(O.quadratic(100), (1.0, 1.0), "gd", 5.0, 500)
    assert len(path) < 501 and losses[-1] > 1e6


def test_first_step_sizes():
    sizes = O.first_step_sizes((1e-3, 1.0, 1e3), lr=0.01)
    assert np.allclose(sizes["adam"], 0.01, rtol=1e-4)
    assert np.allclose(sizes["sgd"], [1e-5, 1e-2, 10.0])


def test_decay_demo():
    shrink = O.decay_demo((0.01, 1.0, 100.0), lr=1e-3, weight_decay=0.1, steps=100)
    assert np.ptp(shrink["AdamW"]) < 1e-9
    assert math.isclose(shrink["AdamW"][0], 100 * (1 - (1 - 1e-4) ** 100), rel_tol=1e-9)
    assert shrink["Adam + L2"][0] > 50 > shrink["Adam + L2"][2]
    with pytest.raises(ValueError, match="weight_decay"):
        O.decay_demo(weight_decay=0.0)


def test_schedule_curves():
    total = 100
    assert np.allclose(O.schedule_curve("constant", total, 0.1), 0.1)
    step = O.schedule_curve("step", total, 1.0)
    assert step[0] == 1.0 and math.isclose(step[60], 0.1) and math.isclose(step[-1], 0.01)
    cosine = O.schedule_curve("cosine", total, 1.0)
    assert cosine[0] == 1.0 and cosine[-1] < 0.01 and np.all(np.diff(cosine) <= 1e-12)
    warm = O.schedule_curve("warmup_cosine", total, 1.0, warmup_fraction=0.2)
    assert warm[0] < 0.1 and math.isclose(warm.max(), 1.0, rel_tol=1e-6) and int(np.argmax(warm)) == 20
    with pytest.raises(ValueError, match="schedule"):
        O.schedule_builder("linear", 10)


def test_train_sweep_and_time_to_target(small_data):
    sweep = O.lr_sweep("mlp", small_data, "adam", [1e-3, 1e-2], epochs=2, width=16)
    assert set(sweep) == {1e-3, 1e-2}
    assert O.best_lr(sweep) in sweep
    history = sweep[1e-2]
    epoch, seconds = O.time_to_target(history, 0.0)
    assert epoch == 0 and seconds >= 0  # row 0 is measured before training
    assert O.time_to_target(history, 1.0)[0] in (math.inf, 1.0, 2.0)
    with pytest.raises(ValueError, match="kind"):
        O.train("rnn", small_data, "adam", 1e-3, 1)
    threads = torch.get_num_threads()
    O.train("mlp", small_data, "adam", 1e-3, 1, width=8)
    assert torch.get_num_threads() == threads


def test_decay_grid_shape(small_data):
    calls = []
    grid = O.decay_grid(small_data, "adamw", [1e-3, 1e-2], [0.0, 0.1, 1.0], epochs=1, width=8, progress=calls.append)
    assert grid.shape == (3, 2) and np.all((grid >= 0) & (grid <= 1))
    assert calls[-1] == 1.0
    summary = O.grid_summary(grid)
    assert 1 <= summary["good cells"] <= 6


def test_range_test_and_divergence(small_data):
    result = O.lr_range_test("mlp", small_data, steps=60, lr_max=100.0)
    assert result["blew_up"] and result["suggested"] < result["lr_at_min"]
    losses = O.loss_per_step("mlp", small_data, "momentum", 5.0, 30)
    assert O.blow_up(losses) > 10
    assert O.blow_up(np.array([1.0, np.nan])) == math.inf


def test_explore_trajectory_returns_figure_and_numbers():
    fig, numbers = O.explore_trajectory("adam", "rosenbrock", lr=0.05, steps=50)
    assert {"final loss", "distance to minimum", "diverged"} <= set(numbers)
    assert len(fig.axes) >= 2
    fig, numbers = O.explore_trajectory("gd", "quadratic", lr=0.01, kappa=10, steps=30)
    assert not numbers["diverged"]
    with pytest.raises(ValueError, match="kappa"):
        O.explore_trajectory(kappa=0.5)
    with pytest.raises(ValueError, match="optimizer"):
        O.explore_trajectory(optimizer="lbfgs")


def test_explore_training(small_data):
    seen = []
    fig, numbers = O.explore_training("adamw", 1e-2, 1e-2, "warmup_cosine", epochs=2, data=small_data,
                                      progress=seen.append)
    assert 0 <= numbers["final val accuracy"] <= 1 and seen[-1] == 1.0
    with pytest.raises(ValueError, match="epochs"):
        O.explore_training(epochs=0, data=small_data)


def _nesterov_right(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return w - lr * (grad + momentum * velocity), velocity


def _nesterov_wrong(w, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return w - lr * velocity, velocity


def _rmsprop_right(w, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad ** 2
    return w - lr * grad / (square_avg.sqrt() + eps), square_avg


def _rmsprop_wrong(w, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad ** 2
    return w - lr * grad / (square_avg + eps), square_avg


def _stub(*args):
    raise NotImplementedError


def test_checkers(capsys):
    assert O.check_nesterov(_nesterov_right)
    assert O.check_rmsprop(_rmsprop_right)
    assert not O.check_nesterov(_stub)
    assert not O.check_rmsprop(lambda *a: None)
    assert "Not attempted" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Hint"):
        O.check_nesterov(_nesterov_wrong)
    with pytest.raises(AssertionError, match="Hint"):
        O.check_rmsprop(_rmsprop_wrong)


def test_lr_pick_checker():
    result = {"lr_at_min": 0.1}
    assert not O.check_lr_pick(None, result)
    assert O.check_lr_pick(0.01, result)
    with pytest.raises(AssertionError, match="edge"):
        O.check_lr_pick(0.09, result)
    with pytest.raises(AssertionError, match="crawl"):
        O.check_lr_pick(1e-5, result)
