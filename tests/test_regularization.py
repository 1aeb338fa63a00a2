"""Tests for helpers.regularization: augmentations, callbacks, statistics, explorers, checkers."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
from torch.nn import functional as F

from helpers import data, models, regularization as reg, train

TINY = reg.Recipe(width=16, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def tiny_split():
    return data.mnist1d(n_train=100, seed=0, device="cpu")


def test_random_shift_rolls_each_row_by_at_most_max_shift():
    x = torch.arange(10.0).repeat(50, 1)
    out = reg.random_shift(x, 3, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    shifts = (x[:, 0:1] - out[:, 0:1]).squeeze() % 10  # out[i, 0] = x[i, -s]
    assert set(((-shifts) % 10).tolist()) <= {0, 1, 2, 3, 7, 8, 9}
    assert torch.equal(out.sort(1).values, x)  # a permutation of each row
    assert torch.equal(reg.random_shift(x, 0), x)


def test_shift_augment_keeps_labels():
    x, y = torch.randn(8, 40), torch.arange(8)
    xs, ys = reg.shift_augment(2)(x, y)
    assert torch.equal(ys, y) and xs.shape == x.shape


def test_mixup_mixes_inputs_and_targets_consistently():
    torch.manual_seed(0)
    x = torch.eye(4)
    y = torch.arange(4)
    xm, ym = reg.mixup(0.4, 4)(x, y)
    assert ym.shape == (4, 4)
    assert torch.allclose(ym.sum(1), torch.ones(4))
    assert torch.allclose(xm, ym)  # inputs are one-hot too, so the mixes must agree
    loss = F.cross_entropy(torch.zeros(4, 4), ym)
    assert math.isclose(loss.item(), math.log(4), rel_tol=1e-5)


def test_weight_norm_and_weights_of():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert math.isclose(reg.weight_norm(model), math.sqrt(6))
    assert reg.weights_of(model).shape == (6,)


def test_train_recipe_records_weight_norm_and_test_metrics(tiny_split):
    run = reg.train_recipe(tiny_split, TINY, seed=0)
    assert len(run.history.extra["weight_norm"]) == TINY.epochs + 1
    assert 0 <= run.test_acc <= 1 and run.test_nll > 0 and 0 <= run.test_ece <= 1
    assert set(run.row()) >= {"train acc", "test acc", "test NLL", "gap (train-test acc)"}


def test_train_recipe_is_reproducible_per_seed(tiny_split):
    a = reg.train_recipe(tiny_split, TINY, seed=3)
    b = reg.train_recipe(tiny_split, TINY, seed=3)
    assert a.history.val_loss == b.history.val_loss


def test_levers_with_augmentation_smoothing_and_early_stopping_run(tiny_split):
    recipe = reg.Recipe(width=16, epochs=3, shift=2, mixup_alpha=0.4, label_smoothing=0.1, patience=1,
                        monitor="val_acc", dropout=0.2, weight_decay=0.1)
    run = reg.train_recipe(tiny_split, recipe, seed=0)
    assert run.history.best_epoch is not None and len(run.history.epoch) <= 4  # epochs 0..3


def test_lever_recipes_change_one_thing_each():
    base = reg.Recipe()
    recipes = reg.lever_recipes(base)
    assert recipes["baseline"] == base and recipes["more data (4x)"] == base
    for name, recipe in recipes.items():
        changed = [k for k in base.__dataclass_fields__ if getattr(recipe, k) != getattr(base, k)]
        assert len(changed) <= 1, (name, changed)


def test_lever_table_and_plots(tiny_split):
    runs = {"baseline": reg.train_recipe(tiny_split, TINY), "dropout": reg.train_recipe(tiny_split, TINY)}
    table = reg.lever_table(runs)
    assert table.count("\n") == 3 and "+0.000" in table
    for fig in (reg.plot_levers(runs), reg.plot_dropout_vs_decay(runs)):
        assert fig.axes and all(ax.get_xlabel() for ax in fig.axes)
        plt.close(fig)


def test_overfitting_numbers():
    h = train.History(epoch=[1, 2, 3], train_loss=[1, .5, .1], train_acc=[.5, .8, 1.0],
                      val_loss=[2.0, 1.0, 1.5], val_acc=[.4, .5, .5])
    numbers = reg.overfitting_numbers(h)
    assert numbers["best val-loss epoch"] == 2 and numbers["val-loss rise"] == 0.5
    assert numbers["gap (train-val acc)"] == pytest.approx(0.5)


def test_dropout_statistics_match_theory():
    stats = reg.dropout_statistics(0.5, n=100_000)
    assert stats["variance ratio train/eval"] == pytest.approx(2.0, rel=0.03)
    assert stats["fraction zeroed"] == pytest.approx(0.5, abs=0.01)
    assert stats["mean train"] == pytest.approx(stats["mean eval"], abs=0.02)


def test_dropout_then_batchnorm_shrinks_eval_output():
    stats = reg.dropout_then_batchnorm(0.75, width=8, n=2048, steps=5)
    assert stats["eval/train std ratio"] == pytest.approx(0.5, rel=0.05)


def test_dropout_explorer_returns_figure_and_numbers():
    fig, numbers = reg.dropout_explorer(p=0.3)
    assert numbers["1/p_keep"] == pytest.approx(1 / 0.7)
    assert numbers["variance ratio train/eval"] == pytest.approx(1 / 0.7, rel=0.05)
    plt.close(fig)


def test_overfitting_explorer_runs_and_reports_progress():
    seen = []
    fig, numbers = reg.overfitting_explorer(dropout=0.2, n_train=100, epochs=2, width=16, progress=seen.append)
    assert seen[-1] == 1.0 and 0 <= numbers["test acc"] <= 1 and "gap (train-val acc)" in numbers
    plt.close(fig)


def test_best_of_many_inflates_validation(tiny_split):
    model = models.mlp(40, 10, width=16)
    result = reg.best_of_many(model, tiny_split, n_candidates=20, n_val=50)
    assert result["val acc of winner"] == result["val_acc"].max()
    assert (result["running_best"][1:] >= result["running_best"][:-1]).all()
    plt.close(reg.plot_best_of_many(result))


def test_shuffled_labels_keep_label_counts_and_other_splits(tiny_split):
    shuffled = reg.shuffled_labels(tiny_split, seed=1)
    assert torch.equal(shuffled.y_train.sort().values, tiny_split.y_train.sort().values)
    assert not torch.equal(shuffled.y_train, tiny_split.y_train)
    assert torch.equal(shuffled.y_test, tiny_split.y_test)


def test_stop_at_train_accuracy():
    cb = reg.StopAtTrainAccuracy(0.9)
    h = train.History(train_acc=[0.5])
    assert not cb.on_epoch_end(None, h)
    h.train_acc.append(0.95)
    assert cb.on_epoch_end(None, h)


def test_confidence_summary(tiny_split):
    model = models.mlp(40, 10, width=8)
    s = reg.confidence_summary(model, tiny_split.x_test, tiny_split.y_test)
    assert 0 < s["mean confidence"] <= 1 and len(s["confidence"]) == len(tiny_split.y_test)


def _good_dropout(x, p, training):
    if not training:
        return x
    return x * (torch.rand_like(x) >= p).to(x.dtype) / (1 - p)


def _not_inverted(x, p, training):
    return x * (torch.rand_like(x) >= p).to(x.dtype) if training else x


def _stub(x, p, training):
    raise NotImplementedError


def test_check_inverted_dropout(capsys):
    assert reg.check_inverted_dropout(_good_dropout) is True
    assert reg.check_inverted_dropout(_stub) is False
    assert "Not attempted" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="1/\\(1-p\\)"):
        reg.check_inverted_dropout(_not_inverted)
    with pytest.raises(AssertionError, match="eval mode"):
        reg.check_inverted_dropout(lambda x, p, training: _good_dropout(x, p, True))


def test_check_lever_choice(capsys, monkeypatch):
    assert reg.check_lever_choice(None) is False
    assert "Not attempted" in capsys.readouterr().out
    with pytest.raises(ValueError, match="choice"):
        reg.check_lever_choice({"more layers"})
    fake = {True: 0.5, False: 0.35}

    def fake_train(split, recipe, seed=0):
        return type("R", (), {"test_acc": fake[recipe.shift > 0]})()
    monkeypatch.setattr(reg, "train_recipe", fake_train)
    monkeypatch.setattr(reg.datasets, "mnist1d", lambda **kw: None)
    assert reg.check_lever_choice({"shift augmentation", "dropout"}) is True
    with pytest.raises(AssertionError, match="where"):
        reg.check_lever_choice({"dropout"})
    fake[True] = 0.36
    with pytest.raises(AssertionError, match="fewer levers"):
        reg.check_lever_choice({"shift augmentation", "dropout"})


@pytest.mark.parametrize("kwargs, name", [
    (dict(width=0), "width"), (dict(width=5000), "width"), (dict(epochs=0), "epochs"),
    (dict(dropout=1.0), "dropout"), (dict(label_smoothing=0.9), "label_smoothing"),
    (dict(monitor="train_loss"), "monitor"), (dict(patience=0), "patience"), (dict(shift=-1), "shift"),
])
def test_recipe_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        reg.Recipe(**kwargs)


def test_function_validation(tiny_split):
    with pytest.raises(ValueError, match="max_shift"):
        reg.random_shift(torch.zeros(2, 10), 10)
    with pytest.raises(ValueError, match="x must have shape"):
        reg.random_shift(torch.zeros(10), 1)
    with pytest.raises(ValueError, match="alpha"):
        reg.mixup(0.0, 10)
    with pytest.raises(ValueError, match="p must"):
        reg.dropout_statistics(1.0)
    with pytest.raises(ValueError, match="n_train"):
        reg.run_levers(10, TINY)
    with pytest.raises(ValueError, match="n_candidates"):
        reg.best_of_many(models.mlp(40, 10, width=4), tiny_split, n_candidates=1)
    with pytest.raises(ValueError, match="n_train"):
        reg.overfitting_explorer(n_train=10)
    with pytest.raises(ValueError, match="sizes"):
        reg.size_sweep([5], TINY)
    with pytest.raises(ValueError, match="seed"):
        reg.train_recipe(tiny_split, TINY, seed=-1)


def test_layered_table_groups_levers_by_layer(tiny_split):
    base = reg.train_recipe(tiny_split, TINY)
    runs = {"baseline": base, "dropout": base, "more data (4x)": base}
    table = reg.layered_table(runs).splitlines()
    assert table[2].startswith("| data | more data (4x)") and table[-1].startswith("| — | baseline")
