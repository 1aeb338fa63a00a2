"""Notebook 04, section 4: plain vs residual stacks, gradient ratios, the residual stream and the explorer."""
from __future__ import annotations

import math

import pytest
import torch

from helpers import data
from helpers.experiments import nb04_architecture_depth as depth


@pytest.fixture(scope="module")
def split():
    return data.mnist1d(n_train=200, seed=0, device="cpu")


def test_build_makes_plain_and_residual_stacks():
    plain, residual = depth.build(4, False), depth.build(4, True)
    assert not any(block.residual for block in plain.blocks)
    assert [block.residual for block in residual.blocks] == [False, True, True, True]
    assert isinstance(residual.blocks[1].norm, torch.nn.LayerNorm)
    assert isinstance(depth.build(3, True, "none").blocks[1].norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="norm"):
        depth.build(3, True, "group")


def test_training_records_the_training_loss_from_initialisation(split):
    seen = []
    run = depth.train(3, True, split, 20, checkpoints=4, progress=seen.append)
    assert run.steps == [0, 5, 10, 15, 20] and len(run.train_loss) == 5
    assert abs(run.train_loss[0] - math.log(10)) < 0.5 and run.final() < run.train_loss[0]
    assert len(seen) == 20 and seen[-1] == 1.0


def test_training_stops_at_a_non_finite_loss(split, monkeypatch):
    losses = iter([2.3, 1.0, math.inf, 0.5])
    monkeypatch.setattr(depth, "training_loss", lambda model, split: next(losses))
    run = depth.train(3, True, split, 8, checkpoints=4)
    assert run.steps == [0, 2, 4] and run.final() == math.inf


def test_training_loss_reports_overflow_as_infinity(split):
    model = depth.build(3, False)
    with torch.no_grad():
        model.head.weight.fill_(float("inf"))
    assert depth.training_loss(model, split) == math.inf


def test_checkpoints_are_capped_at_the_number_of_steps(split):
    assert depth.train(2, False, split, 3).steps == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, name", [({"depth": 0}, "depth"), ({"steps": 0}, "steps"), ({"lr": 0}, "lr"),
                                          ({"checkpoints": 0}, "checkpoints")])
def test_training_arguments_are_checked(split, kwargs, name):
    arguments = {"depth": 3, "residual": True, "split": split, "steps": 10} | kwargs
    with pytest.raises(ValueError, match=name):
        depth.train(**arguments)


def test_gradient_ratio_separates_deep_plain_from_deep_residual(split):
    plain, residual = depth.gradient_ratio(24, False, split), depth.gradient_ratio(24, True, split)
    assert plain > 10 * residual and residual < 10
    with pytest.raises(ValueError, match="depth"):
        depth.gradient_ratio(2, False, split)


def test_residual_stream_grows_without_normalization():
    growth = depth.residual_stream_growth(depth=64)
    assert growth["none"] > 1000 * growth["layer"]
    assert depth.residual_stream_growth(depth=8)["none"] < growth["none"] / 100


def test_run_depths_and_plot(split):
    runs = depth.run_depths([2, 3], split, 4, lr=1e-3)
    assert set(runs) == {(2, False), (2, True), (3, False), (3, True)}
    fig = depth.plot_depths(runs)
    assert len(fig.axes[0].lines) == 5  # four runs and the chance line
    assert all(run.steps[-1] == 4 for run in runs.values())


def test_run_depths_trains_the_deepest_plain_network_longer(split):
    runs = depth.run_depths([2, 3], split, 4, lr=1e-3, more_steps=3)
    assert runs[(3, False)].steps[-1] == 12 and runs[(3, False)].at(4) == runs[(3, False)].train_loss[4]
    assert [run.steps[-1] for key, run in runs.items() if key != (3, False)] == [4, 4, 4]
    with pytest.raises(ValueError, match="checkpoints"):
        runs[(3, False)].at(13)
    with pytest.raises(ValueError, match="more_steps"):
        depth.run_depths([2], split, 4, more_steps=0)


def test_explorer_reports_progress_numbers_and_notes(split):
    seen = []
    fig, numbers = depth.depth_explorer(depth=4, norm="layer", steps=10, split=split, progress=seen.append)
    assert fig.axes[0].has_data() and seen[-1] == pytest.approx(1.0)
    assert max(b - a for a, b in zip([0.0, *seen], seen)) <= 0.1
    assert {"plain: final training loss", "residual: final training loss"} <= set(numbers)
    assert "gradient ratio first/last layer at init, plain" in numbers
    _, broken = depth.depth_explorer(depth=64, norm="none", steps=10, split=split)
    assert "note" in broken


@pytest.mark.parametrize("kwargs, name", [({"depth": 1}, "depth"), ({"depth": 65}, "depth"),
                                          ({"norm": "group"}, "norm"), ({"steps": 5}, "steps"),
                                          ({"steps": 301}, "steps")])
def test_explorer_checks_its_controls(split, kwargs, name):
    with pytest.raises(ValueError, match=name):
        depth.depth_explorer(split=split, **kwargs)
