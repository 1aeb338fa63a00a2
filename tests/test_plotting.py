import numpy as np
import pytest
import torch

from helpers import data, models, plotting
from helpers.train import History


def labelled(fig):
    axes = fig.axes
    has_title = bool(fig._suptitle and fig._suptitle.get_text()) or any(ax.get_title() for ax in axes)
    return has_title and all(ax.get_xlabel() and ax.get_ylabel() for ax in axes if ax.get_label() != "<colorbar>")


def test_figure_requires_title_and_labels():
    fig, ax = plotting.figure("t", "x (units)", "y (units)")
    assert labelled(fig)
    with pytest.raises(ValueError, match="every figure is titled and labelled"):
        plotting.figure("", "x", "y")


def test_learning_curves_has_a_line_per_split_and_legend():
    h = History()
    for e in range(1, 4):
        h.log(epoch=e, train_loss=1 / e, train_acc=0.5, val_loss=1.2 / e, val_acc=0.4, seconds=e, lr=0.1)
    fig = plotting.learning_curves({"adam": h, "sgd": h})
    assert labelled(fig) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 4 and fig.axes[0].get_legend() is not None


def test_layer_bars_and_heatmap():
    fig = plotting.layer_bars({"a": [1, 2, 3], "b": [3, 2, 1]}, "grad norms", "norm (a.u.)", reference=1e-3)
    assert labelled(fig) and fig.axes[0].get_yscale() == "log"
    fig = plotting.heatmap(np.ones((2, 3)), [1, 2, 3], ["a", "b"], "acc", "lr", "wd", "accuracy")
    assert labelled(fig)
    with pytest.raises(ValueError, match=r"matrix must have shape \(2, 2\)"):
        plotting.heatmap(np.ones((2, 3)), [1, 2], ["a", "b"], "acc", "lr", "wd", "accuracy")


def test_decision_boundary_on_spirals():
    d = data.spirals(n=100, device="cpu")
    fig = plotting.decision_boundary(models.mlp(2, 2, width=4), d.x_train, d.y_train, resolution=20)
    assert labelled(fig)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        plotting.decision_boundary(models.mlp(3, 2), torch.zeros(4, 3), torch.zeros(4))


def test_legend_outside_places_the_legend_clear_of_the_axes():
    fig, ax = plotting.figure("t", "x (unit)", "y (unit)")
    ax.plot([0, 1], [0, 1], label="line")
    plotting.legend_outside(ax)
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    assert box.x0 >= ax.get_window_extent().x1
    plotting.legend_outside(ax, below=True, columns=2)
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0
