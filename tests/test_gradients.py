"""Tests for helpers.gradients: gradient flow, saturation, update ratios, RNN growth, clipping, explorers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import gradients as gr


def test_gradient_flow_shape_and_vanishing_sigmoid():
    relu = gr.gradient_flow("relu", "he", depth=6, width=32, batch=16)
    sigmoid = gr.gradient_flow("sigmoid", "xavier", depth=6, width=32, batch=16)
    assert relu.shape == (6,) and np.all(relu > 0)
    assert gr.flow_ratio(sigmoid) < 0.01 < gr.flow_ratio(relu)


def test_residual_model_exposes_one_activation_per_layer():
    model = gr.flow_model(16, 3, depth=5, width=16, residual=True, norm="layer")
    logits, hidden = model.forward_with_hidden(torch.randn(4, 16))
    assert logits.shape == (4, 3) and len(hidden) == 5


def test_flow_table_collects_ratios_per_seed():
    table = gr.flow_table({"relu": dict(activation="relu", init="he")}, seeds=[0, 1], depth=4, width=16, batch=8)
    assert table["relu"]["ratios"].shape == (2,) and table["relu"]["norms"].shape == (4,)


def test_flow_validation():
    with pytest.raises(ValueError, match="depth"):
        gr.gradient_flow(depth=51)
    with pytest.raises(ValueError, match="width"):
        gr.gradient_flow(width=1024)
    with pytest.raises(ValueError, match="activation"):
        gr.gradient_flow(activation="swish")


def test_flow_ratio_and_figure_validation():
    assert gr.flow_ratio([2.0, 1.0, 4.0]) == 0.5
    with pytest.raises(ValueError, match="norms"):
        gr.flow_ratio([1.0])
    with pytest.raises(ValueError, match="values"):
        gr.per_layer_figure({}, "t", "y")
    assert gr.per_layer_figure({"a": [1.0, 2.0]}, "t", "y (unit)", reference=1.5).axes


def test_saturation_fractions_hand_computed():
    h = torch.tensor([[0.0, 0.99, -0.999, 0.5]])
    assert gr.saturation_fractions([h], "tanh")[0] == pytest.approx(0.5)
    s = torch.tensor([[0.5, 0.999, 0.001, 0.7]])
    assert gr.saturation_fractions([s], "sigmoid")[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="activation"):
        gr.saturation_fractions([h], "relu")


def test_update_to_data_ratios_one_per_hidden_layer():
    model = gr.flow_model(8, 3, depth=4, width=16)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    ratios = gr.update_to_data_ratios(model, x, y, lr=0.1, steps=2, batch=8)
    assert ratios.shape == (4,) and np.all(ratios < 0)
    with pytest.raises(ValueError, match="lr"):
        gr.update_to_data_ratios(model, x, y, lr=0.0)


def test_activation_curves_derivatives():
    curves = gr.activation_curves(-2, 2, 5)
    z, value, slope = curves["tanh"]
    assert np.allclose(slope, 1 - np.tanh(z) ** 2)
    assert np.allclose(curves["relu"][2], (z > 0).astype(float))
    with pytest.raises(ValueError, match="hi"):
        gr.activation_curves(1, 0)


def test_linear_collapse_and_dead_relu():
    assert gr.linear_collapse_error(depth=5, width=8) < 1e-5
    model = gr.flow_model(4, 2, depth=2, width=8)
    with torch.no_grad():
        model.blocks[0].linear.bias.fill_(-100.0)
    assert gr.dead_relu_fraction(model, torch.randn(16, 4)) >= 0.5


def test_rnn_gradient_growth_is_exactly_s_to_the_t_when_linear():
    assert gr.rnn_gradient_growth(1.2, 15) == pytest.approx(15 * math.log(1.2), abs=1e-9)
    assert gr.rnn_gradient_growth(1.5, 30, "tanh") < 30 * math.log(1.5)
    with pytest.raises(ValueError, match="scale"):
        gr.rnn_gradient_growth(0.0, 3)


def test_clipping_check_keeps_direction():
    result = gr.clipping_check([torch.full((3,), 10.0), torch.full((2, 2), -5.0)], max_norm=1.0)
    assert result["norm_after"] <= 1.0 + 1e-6
    assert result["cosine"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="max_norm"):
        gr.clipping_check([torch.ones(2)], 0.0)


def test_train_rnn_clips_and_records():
    x, y = torch.randn(40, 5, 1), torch.randint(0, 2, (40,))
    run = gr.train_rnn(x, y, clip=0.5, lr=0.1, steps=3, hidden=4, batch=8)
    assert run["loss"].shape == (3,) and run["grad_norm"].shape == (3,)
    with pytest.raises(ValueError, match="clip"):
        gr.train_rnn(x, y, clip=-1.0)


def test_explorers_return_figure_and_numbers():
    fig, numbers = gr.gradient_flow_explorer(depth=4, width=16, activation="tanh", init="xavier",
                                             norm="layer", residual=True)
    assert fig.axes and numbers["first / last layer"] > 0
    fig, numbers = gr.finite_difference_explorer(-5.0, "float32")
    assert numbers["error at h"] > 1e-4
    with pytest.raises(ValueError, match="norm"):
        gr.gradient_flow_explorer(norm="group")
    with pytest.raises(ValueError, match="log10_h"):
        gr.finite_difference_explorer(0.0)
    with pytest.raises(ValueError, match="precision"):
        gr.finite_difference_explorer(-5.0, "float16")
