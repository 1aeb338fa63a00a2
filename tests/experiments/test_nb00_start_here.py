"""Notebook 00's experiment module: the training pair, the explorer's notes and axes, the exercise checker."""
from __future__ import annotations

import math

import pytest

from helpers import train
from helpers.experiments import nb00_start_here as start


def test_linear_and_mlp_share_data_and_log_an_epoch_zero_row():
    runs = start.train_linear_and_mlp(width=16, epochs=2, n_train=200, seed=1)
    assert set(runs) == {"linear", "mlp"}
    for _, history in runs.values():
        assert history.epoch == [0, 1, 2]
        assert history.val_loss[0] == pytest.approx(math.log(10), abs=0.6)   # near-uniform outputs at initialisation
    with pytest.raises(ValueError, match="epochs"):
        start.train_linear_and_mlp(epochs=0)


def test_overfitting_summary_finds_the_best_validation_epoch():
    class Fake:
        epoch, val_loss = [0, 1, 2, 3], [2.3, 1.2, 1.5, 2.0]
        val_acc, train_acc = [0.1, 0.5, 0.55, 0.56], [0.1, 0.6, 0.9, 1.0]
    summary = start.overfitting_summary(Fake())
    assert summary["best epoch"] == 1 and summary["validation loss at end"] == 2.0
    assert summary["validation accuracy at end"] == 0.56 and summary["train accuracy at end"] == 1.0


def test_tiny_run_returns_curves_numbers_and_an_axis_that_does_not_zoom():
    fig, numbers = start.tiny_run(width=64, lr=3e-3)
    loss_axis, accuracy_axis = fig.axes
    assert accuracy_axis.get_ylim() == (0.0, 1.0)
    assert loss_axis.get_ylim()[1] - loss_axis.get_ylim()[0] >= 3.0
    assert 0.0 <= numbers["final validation accuracy"] <= 1.0 and "note" not in numbers
    assert numbers["parameters"] == 40 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


def test_tiny_run_says_when_the_network_died():
    _, numbers = start.tiny_run(width=64, lr=0.3)
    assert numbers["final validation accuracy"] < 0.15
    assert "died" in numbers["note"] and "never fire" in numbers["note"]


def _history(val_acc: float, train_loss: float = 0.5) -> train.History:
    history = train.History()
    history.log(epoch=0, train_loss=2.3, train_acc=0.1, val_loss=2.3, val_acc=0.1, seconds=0.0, lr=1e-3)
    history.log(epoch=1, train_loss=train_loss, train_acc=val_acc, val_loss=1.0, val_acc=val_acc,
                seconds=1.0, lr=1e-3)
    return history


def test_tiny_note_names_far_below_default_and_dead_layers():
    default = start._tiny_training(start.TINY_DEFAULTS["width"], start.TINY_DEFAULTS["lr"], 0)[1].final()["val_acc"]
    assert start._tiny_note(64, 3e-3, 0, _history(default), [0.0, 0.1]) is None
    far = start._tiny_note(64, 0.1, 0, _history(default - 0.2), [0.0, 0.1])
    assert "far below the default setting" in far and "learning rate is above the default" in far
    assert "width" not in far
    narrow = start._tiny_note(4, 3e-3, 0, _history(default - 0.2), [0.0, 0.0])
    assert "width is below the default 64" in narrow
    dead = start._tiny_note(64, 3e-3, 0, _history(default), [0.2, 0.75])
    assert dead.startswith("Most of a layer is dead") and "75% of the units of hidden layer 2" in dead
    assert "died" in start._tiny_note(64, 0.3, 0, _history(0.1), [0.0, 1.0])
    assert "diverged" in start._tiny_note(64, 0.3, 0, _history(0.1, train_loss=float("nan")), [0.0, 0.0])


def test_tiny_run_validates_its_controls():
    with pytest.raises(ValueError, match=r"width must be an integer in \[4, 256\]"):
        start.tiny_run(width=512)
    with pytest.raises(ValueError, match="lr"):
        start.tiny_run(lr=2.0)


def test_initial_loss_checker_never_raises(capsys):
    assert start.check_initial_loss(None) is False
    assert "Not attempted" in capsys.readouterr().out
    assert start.check_initial_loss(2.0) is False
    assert "Hint" in capsys.readouterr().out
    assert start.check_initial_loss("ln 10") is False
    assert start.check_initial_loss(math.log(10)) is True
    assert "Correct" in capsys.readouterr().out


def test_curves_figure_puts_legends_below_the_panels():
    runs = start.train_linear_and_mlp(width=8, epochs=1, n_train=100, seed=0)
    fig = start.curves_figure({name: history for name, (_, history) in runs.items()}, title="curves")
    for ax in fig.axes:
        assert ax.get_legend()._loc == 9 and ax.get_legend().get_bbox_to_anchor() is not None
