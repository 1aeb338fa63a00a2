"""Notebook 01, section 5: gradient flow, saturation, update ratios, Adam's first step, low precision, explorer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.data import mnist1d
from helpers.experiments import nb01_backpropagation_depth as lab


@pytest.fixture(scope="module")
def small_data():
    return mnist1d(n_train=300, seed=0, device="cpu")


def test_gradient_flow_shape_and_vanishing_sigmoid():
    relu = lab.gradient_flow("relu", "he", depth=6, width=32, batch=16)
    sigmoid = lab.gradient_flow("sigmoid", "xavier", depth=6, width=32, batch=16)
    assert relu.shape == (6,) and np.all(relu > 0)
    assert lab.flow_ratio(sigmoid) < 0.01 < lab.flow_ratio(relu)


def test_flow_models_use_the_named_initialisation():
    model = lab.flow_model(64, 3, depth=3, width=64, activation="relu", init="he")
    weight = model.blocks[1].linear.weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    assert model.blocks[1].linear.bias.detach().abs().max().item() == 0.0
    naive = lab.flow_model(64, 3, depth=3, width=64, init="naive")
    assert naive.blocks[1].linear.weight.std().item() == pytest.approx(1.0, rel=0.1)


def test_residual_model_exposes_one_activation_per_layer_and_scales_its_branches():
    model = lab.flow_model(16, 3, depth=5, width=16, residual=True, norm="layer")
    logits, hidden = model.forward_with_hidden(torch.randn(4, 16))
    assert logits.shape == (4, 3) and len(hidden) == 5
    assert model.outer[0].weight.std().item() == pytest.approx(math.sqrt(2 / 16) / math.sqrt(5), rel=0.3)


def test_exploding_gradients_stay_finite_in_the_norm():
    norms = lab.gradient_flow("relu", "naive", depth=20, width=256, batch=64)
    assert np.isfinite(norms).all() and lab.flow_ratio(norms) > 1e6


def test_flow_table_and_figure():
    table = lab.flow_table({"relu": dict(activation="relu", init="he")}, seeds=[0, 1], depth=4, width=16, batch=8)
    assert table["relu"]["ratios"].shape == (2,) and table["relu"]["norms"].shape == (4,)
    assert lab.flow_ratio([2.0, 1.0, 4.0]) == 0.5
    with pytest.raises(ValueError, match="norms"):
        lab.flow_ratio([1.0])
    with pytest.raises(ValueError, match="values"):
        lab.per_layer_figure({}, "t", "y")
    assert lab.per_layer_figure({"a": [1.0, 2.0]}, "t", "y (unit)", reference=1.5).axes


def test_flow_validation():
    with pytest.raises(ValueError, match="depth"):
        lab.gradient_flow(depth=51)
    with pytest.raises(ValueError, match="width"):
        lab.gradient_flow(width=1024)
    with pytest.raises(ValueError, match="activation"):
        lab.gradient_flow(activation="swish")


def test_saturation_fractions_hand_computed():
    h = torch.tensor([[0.0, 0.99, -0.999, 0.5]])
    assert lab.saturation_fractions([h], "tanh")[0] == pytest.approx(0.5)
    s = torch.tensor([[0.5, 0.999, 0.001, 0.7]])
    assert lab.saturation_fractions([s], "sigmoid")[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="activation"):
        lab.saturation_fractions([h], "relu")
    assert lab.saturation_profile("tanh", "naive", depth=3, width=32, batch=16).min() > 0.5


def test_update_to_data_ratios_one_per_hidden_layer(small_data):
    ratios = lab.update_ratio_profile(small_data, "relu", "he", depth=4, width=16, steps=2)
    assert ratios.shape == (4,) and np.all(ratios < 0)
    with pytest.raises(ValueError, match="lr"):
        lab.update_ratio_profile(small_data, "relu", "he", lr=0.0)


def test_forward_spread_collapses_for_deep_sigmoid_only(small_data):
    sigmoid = lab.forward_spread(small_data, "sigmoid", "xavier", depth=12, width=32)
    relu = lab.forward_spread(small_data, "relu", "he", depth=12, width=32)
    assert sigmoid.shape == relu.shape == (12,)
    assert sigmoid[-1] < 1e-3 * sigmoid[0] and relu[-1] > 0.05


def test_training_table_runs_each_setting_with_each_optimizer(small_data):
    settings = {"ReLU + He": dict(activation="relu", init="he")}
    histories = lab.training_table(small_data, depth=3, width=8, epochs=1, settings=settings,
                                   adam_settings=("ReLU + He",))
    assert set(histories) == {("ReLU + He", "sgd"), ("ReLU + He", "adam")}
    assert all(h.epoch == [0, 1] for h in histories.values())
    with_control = lab.training_table(small_data, depth=3, width=8, epochs=1, settings=settings, adam_settings=(),
                                      tiny_eps_settings=("ReLU + He",))
    assert set(with_control) == {("ReLU + He", "sgd"), ("ReLU + He", "adam, eps 1e-30")}


def test_low_precision_gradients_underflow_in_float16_only(small_data):
    formats = lab.low_precision_gradients(small_data, depth=12, width=32, batch=64)
    assert set(formats) == {"float16", "float16, loss x 2^10", "bfloat16"}
    assert formats["float16"]["became 0"] > formats["float16, loss x 2^10"]["became 0"]
    assert formats["float16"]["became 0"] > 10 * formats["float16"]["became non-zero"]
    assert formats["bfloat16"]["became 0"] < 0.01
    assert all(0 <= row["relative error"] < 1 and 0 <= row["ReLU decisions flipped"] < 0.05
               for row in formats.values())


def test_dynamic_loss_scaling_halves_until_finite(small_data):
    rows, zeroed = lab.dynamic_loss_scaling(small_data, depth=12, width=32, batch=64, start=2.0**30)
    scales = [row["loss scale"] for row in rows]
    assert scales == [2.0**30 / 2**k for k in range(len(rows))]
    assert all(row["inf or NaN in the gradient"] for row in rows[:-1])
    assert not rows[-1]["inf or NaN in the gradient"] and rows[-1]["scaler"] == "take the step"
    assert 0.0 <= zeroed < 0.01
    with pytest.raises(ValueError, match="start"):
        lab.dynamic_loss_scaling(small_data, start=0.5)


def test_flow_figure_draws_raw_and_relative_panels():
    fig = lab.flow_figure({"a": [1e-6, 1e-3, 1.0], "b": [0.5, 1.0, 2.0]}, depth=3, width=4)
    raw, relative = fig.axes[:2]
    assert relative.get_ylim() == pytest.approx((0.1, 10))
    assert relative.lines[1].get_ydata()[-1] == pytest.approx(1.0)


def test_explorer_healthy_case_has_no_note():
    fig, numbers = lab.gradient_flow_explorer(depth=4, width=16, activation="tanh", init="xavier", norm="layer",
                                              residual=True)
    assert fig.axes and numbers["first / last layer"] > 0 and "note" not in numbers


def test_explorer_says_when_the_forward_pass_overflows_and_still_draws():
    fig, numbers = lab.gradient_flow_explorer(depth=50, activation="relu", init="naive")
    assert "forward pass overflowed float32" in numbers["note"] and "all 50 layers" in numbers["note"]
    assert fig.axes[0].has_data() and "first / last layer" not in numbers


def test_explorer_names_the_layers_whose_gradient_left_float32s_normal_range():
    fig, numbers = lab.gradient_flow_explorer(depth=50, activation="sigmoid", init="default")
    assert "below float32's smallest normal number" in numbers["note"] and "in layers 1-" in numbers["note"]
    assert numbers["layers with no usable gradient"] >= 1 and fig.axes[0].has_data()
    low, high = fig.axes[0].get_ylim()
    assert high / low >= 1e3


def test_explorer_names_layers_whose_gradient_is_exactly_zero(monkeypatch):
    norms = np.array([0.0, 0.0, 1e-3, 1e-2, 1e-1])
    monkeypatch.setattr(lab, "flow_pass", lambda *_, **__: (np.ones(5), norms))
    fig, numbers = lab.gradient_flow_explorer(depth=5)
    assert numbers["note"] == "Gradients underflowed to exactly 0 in layers 1-2 (shaded on the plot)."
    assert numbers["smallest norm"] == 1e-3 and "first / last layer" not in numbers


def test_explorer_names_layers_whose_gradient_overflowed(monkeypatch):
    norms = np.array([np.inf, np.nan, 1e30, 1e10, 1.0])
    monkeypatch.setattr(lab, "flow_pass", lambda *_, **__: (np.ones(5), norms))
    _, numbers = lab.gradient_flow_explorer(depth=5)
    assert numbers["note"].startswith("Gradients overflowed float32 (above 3.4e+38) in 2 of 5 layers (1-2)")


def test_layer_ranges():
    assert lab._layer_ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"


def test_explorer_validation():
    with pytest.raises(ValueError, match="norm"):
        lab.gradient_flow_explorer(norm="group")
    with pytest.raises(ValueError, match="width"):
        lab.gradient_flow_explorer(width=8)
