"""Notebook 05: every healthy pipeline passes, every planted bug is stopped at its step, explorer and checkers work."""
from dataclasses import fields

import pytest
import torch
from torch import nn

from helpers.experiments import nb05_debugging
from helpers.experiments import nb05_debugging_figures as figures
from helpers.scratch import training_checks

STEPS = 100


@pytest.fixture(scope="module")
def reports():
    return nb05_debugging.gallery(seed=0, steps=STEPS, overfit_steps=100, progress=lambda fraction: None)


@pytest.mark.parametrize("name", list(nb05_debugging.HEALTHY))
def test_healthy_pipelines_pass_every_check(reports, name):
    assert reports[name].first_failure() is None, reports[name].rows()


@pytest.mark.parametrize("name", list(nb05_debugging.BUGS))
def test_each_planted_bug_is_first_caught_at_its_expected_step(reports, name):
    first = reports[name].first_failure()
    assert first is not None and first.rule.step == nb05_debugging.BUGS[name].step, reports[name].rows()


CHANGED = {"data": {"data"}, "split": {"data"}, "model": {"build_model"}, "loss": {"loss"},
           "optimizer": {"make_optimizer"}, "training step": {"train_step"}, "prediction": {"predict"}}


@pytest.mark.parametrize("name", list(nb05_debugging.BUGS))
def test_each_bug_changes_only_the_part_it_is_planted_in(name):
    bug = nb05_debugging.BUGS[name]
    healthy = nb05_debugging.healthy(bug.base, seed=0)
    planted = nb05_debugging.planted(name, seed=0, base=healthy)
    changed = {f.name for f in fields(healthy) if getattr(healthy, f.name) is not getattr(planted, f.name)} - {"name"}
    allowed = CHANGED[bug.part] | ({"data"} if name == "exploding class weights" else set())
    assert changed and changed <= allowed and planted.name == name


def test_validation_only_bugs_leave_the_training_data_alone():
    for name, bug in nb05_debugging.BUGS.items():
        healthy = nb05_debugging.healthy(bug.base, seed=0)
        planted = nb05_debugging.planted(name, seed=0, base=healthy)
        same_training = torch.equal(planted.data.x_train, healthy.data.x_train) and \
            torch.equal(planted.data.y_train, healthy.data.y_train) and planted.train_step is healthy.train_step
        if bug.validation_only:
            assert same_training and planted.loss is healthy.loss and planted.build_model is healthy.build_model


def test_the_batch_mixing_layer_is_a_transpose_when_healthy():
    linear = nn.Linear(3, 4)
    x = torch.randn(5, 3)
    assert torch.allclose(nb05_debugging.ColumnLinear(linear, mix_batch=False)(x), linear(x), atol=1e-6)
    mixed = nb05_debugging.ColumnLinear(linear, mix_batch=True)(x)
    assert mixed.shape == (5, 4) and not torch.allclose(mixed, linear(x))
    assert training_checks.batch_leak(nb05_debugging.ColumnLinear(linear, mix_batch=True), x) > 0.5


def test_class_weights_are_inverse_frequency():
    planted = nb05_debugging.planted("exploding class weights", seed=0)
    counts = torch.bincount(planted.data.y_train, minlength=10)
    assert counts[nb05_debugging.STARVED_CLASS] == 3
    logits = torch.zeros(2, 10)
    rare, common = nb05_debugging.STARVED_CLASS, 1
    x = torch.zeros(2, 40)
    single = [planted.loss(logits[:1], x[:1], torch.tensor([c])) for c in (rare, common)]
    assert single[0].item() == pytest.approx(single[1].item())           # a mean divides by the weight sum
    weights = len(planted.data.y_train) / (10 * counts.float())
    assert planted.loss(logits, x, torch.tensor([rare, common])).item() == pytest.approx(
        torch.log(torch.tensor(10.0)).item())
    assert weights[rare] / weights[common] > 100


def test_pipeline_names_are_checked():
    with pytest.raises(ValueError, match="name"):
        nb05_debugging.pipeline_named("no such bug")
    with pytest.raises(ValueError, match="name"):
        nb05_debugging.planted("no such bug")
    with pytest.raises(ValueError, match="base"):
        nb05_debugging.healthy("cifar")


def test_explore_bug_shows_curves_and_names_the_check(reports):
    seen = []
    fig, numbers = nb05_debugging.explore_bug("missing zero_grad", steps=40, progress=seen.append)
    assert all(ax.has_data() for ax in fig.axes) and seen[-1] == 1.0
    assert "step 4" in numbers["first failing check"] and "step 4" in numbers["note"]
    _, numbers = nb05_debugging.explore_bug("healthy digits", steps=40)
    assert numbers["first failing check"] == "none" and numbers["note"] == "Every check passes."


def trains_in_train_mode(pipeline):
    x, y = pipeline.batch(64)
    return all(training_checks.modes_during_training(pipeline, x, y))


def ignores_padding(pipeline):
    x, y = pipeline.batch(64)
    return training_checks.padding_change(pipeline, pipeline.fresh_model(), x, y) < 1e-4


def stub(pipeline):
    raise NotImplementedError


@pytest.mark.parametrize("checker, answer", [(nb05_debugging.check_train_mode, trains_in_train_mode),
                                             (nb05_debugging.check_padding_invariance, ignores_padding)])
def test_checkers_accept_a_right_answer_and_reject_wrong_ones_without_raising(checker, answer, capsys):
    assert checker(answer) is True
    assert "Correct" in capsys.readouterr().out
    assert checker(stub) is False and "Not attempted" in capsys.readouterr().out
    for constant in (True, False):
        assert checker(lambda pipeline, value=constant: value) is False
        assert "Not quite" in capsys.readouterr().out
    assert checker(lambda pipeline: 1 / 0) is False and "ZeroDivisionError" in capsys.readouterr().out


def test_gallery_figures_and_the_spoken_answer(reports):
    expected = {name: bug.step for name, bug in nb05_debugging.BUGS.items()}
    matrix = figures.verdict_matrix(reports)
    first_failures = (matrix == 3).sum(1).tolist()
    assert matrix.shape == (len(reports), 21)
    assert first_failures == [0] * len(nb05_debugging.HEALTHY) + [1] * len(expected)
    assert figures.heatmap(reports, expected).axes[0].has_data()
    rows = figures.measured_rows(reports, {}, expected)
    assert len(rows) == len(reports) and rows[0]["first failure"] == "none"
    text = figures.spoken_checklist(reports)
    assert text.count("\n1. ") + text.count("\n7. ") == 2 and "nan" not in text and "-0.00" not in text
    assert figures.learning_rate_figure({"a": reports["healthy MNIST-1D"]}, 10, (1e-3, 0.5)).axes[0].has_data()
    assert figures.gradient_figure({"a": reports["starved class"]}).axes[0].has_data()
    assert len(figures.gradient_figure({"a": reports["starved class"], "b": reports["healthy MNIST-1D"]}).axes) == 2


def test_dead_unit_shares_count_units_never_positive():
    pipeline = nb05_debugging.healthy("mnist1d", seed=0)
    model = pipeline.fresh_model()
    with torch.no_grad():
        model.blocks[1].linear.bias.fill_(-1e6)
    shares = nb05_debugging.dead_unit_shares(model, pipeline.data.x_val)
    assert len(shares) == 2 and shares[0] < 0.1 and shares[1] == 1.0


def test_unscaled_pixels_are_fatal_without_normalization():
    standardized, raw = nb05_debugging.scale_without_normalization(seed=0, steps=60)
    assert standardized["validation accuracy"] > 0.8 and raw["validation accuracy"] < 0.2
    assert standardized["loss at init / ln C"] < 1.2 < 3 < raw["loss at init / ln C"]
