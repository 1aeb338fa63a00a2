"""Notebook 01, section 4: activation curves, linear collapse, dead units per layer, symmetric starts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.data import mnist1d
from helpers.experiments import nb01_backpropagation_activations as lab
from helpers.models import mlp


@pytest.fixture(scope="module")
def small_data():
    return mnist1d(n_train=300, seed=0, device="cpu")


def test_activation_slopes_match_their_formulas():
    curves = lab.activation_curves(-2, 2, 5)
    z, value, slope = curves["tanh"]
    assert np.allclose(slope, 1 - np.tanh(z) ** 2)
    assert np.allclose(curves["relu"][2], (z > 0).astype(float))
    assert np.allclose(curves["leaky_relu"][2], np.where(z > 0, 1.0, 0.1))
    assert curves["sigmoid"][2].max() == pytest.approx(0.25)
    assert lab.activation_figure(curves).axes
    with pytest.raises(ValueError, match="hi"):
        lab.activation_curves(1, 0)


def test_linear_stack_collapses_to_one_matrix():
    assert lab.linear_collapse_error(depth=5, width=8) < 1e-5


def test_dead_fraction_is_per_layer():
    model = mlp(4, 2, width=8, depth=2)
    with torch.no_grad():
        model.blocks[1].linear.bias.fill_(-100.0)
    fractions = lab.dead_fraction_per_layer(model, torch.randn(64, 4))
    assert fractions.shape == (2,) and fractions[1] == 1.0 and fractions[0] < 1.0


def test_dead_relu_runs_separate_initialisation_from_training(small_data):
    cases = {"bias": (1e-3, -3.0, "relu"), "fine": (1e-3, None, "relu")}
    rows = lab.dead_relu_runs(small_data, epochs=1, width=64, cases=cases)
    bias, fine = rows
    assert bias["dead at init"][1] > 0.5 and fine["dead at init"].max() == 0.0
    assert set(bias) == {"case", "dead at init", "dead after training", "validation accuracy"}
    fig = lab.dead_units_figure(rows, epochs=1)
    assert any(t.get_text() == "0%" for t in fig.axes[0].texts)
    (leaky,) = lab.dead_relu_runs(small_data, epochs=1, width=64, cases={"leaky": (1e-3, -3.0, "leaky_relu")})
    assert leaky["dead at init"][1] > 0.5                   # never positive, yet still passing a gradient
    with pytest.raises(ValueError, match="activation"):
        lab.dead_relu_runs(small_data, epochs=1, width=8, cases={"x": (1e-3, None, "tanh")})


def test_symmetric_starts(small_data):
    constant = lab.symmetric_start(small_data, "constant", width=8, epochs=1)
    zeros = lab.symmetric_start(small_data, "zeros", width=8, epochs=1)
    random = lab.symmetric_start(small_data, "random", width=8, epochs=1)
    assert constant["distinct units"] == 1 and constant["largest |weight|"] > 0
    assert zeros["distinct units"] == 1 and zeros["largest |weight|"] == 0.0
    assert random["distinct units"] == 8
    with pytest.raises(ValueError, match="start"):
        lab.symmetric_start(small_data, "ones")
