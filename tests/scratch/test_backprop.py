"""Manual backward, finite differences and the custom sigmoid, against torch.autograd and hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from helpers.scratch import backprop


def test_mlp_parameters_have_the_right_shapes_scale_and_flags():
    params = backprop.init_mlp_params(n_in=64, n_hidden=128, n_classes=5, seed=3)
    assert {name: tuple(p.shape) for name, p in params.items()} == {"W1": (128, 64), "b1": (128,), "W2": (5, 128),
                                                                    "b2": (5,)}
    assert all(p.requires_grad and p.dtype == torch.float64 and p.is_leaf for p in params.values())
    assert params["W1"].std().item() == pytest.approx(1 / 8, rel=0.05)
    assert params["W2"].std().item() == pytest.approx(1 / math.sqrt(128), rel=0.15)
    assert params["b1"].std().item() == pytest.approx(0.1, rel=0.2)
    again = backprop.init_mlp_params(n_in=64, n_hidden=128, n_classes=5, seed=3)
    assert all(torch.equal(params[k], again[k]) for k in params)
    assert backprop.init_mlp_params(2, 3, 2, dtype=torch.float32)["W1"].dtype == torch.float32


def test_mlp_parameter_defaults():
    params = backprop.init_mlp_params()
    assert [tuple(params[k].shape) for k in ("W1", "b1", "W2", "b2")] == [(16, 8), (16,), (4, 16), (4,)]
    assert torch.equal(params["W1"], backprop.init_mlp_params(8, 16, 4, seed=0)["W1"])


def test_mlp_parameter_sizes_are_validated():
    with pytest.raises(ValueError, match=r"n_in must be an integer in \[1, 4096\]"):
        backprop.init_mlp_params(n_in=0)
    with pytest.raises(ValueError, match=r"n_hidden must be an integer in \[1, 4096\]"):
        backprop.init_mlp_params(n_hidden=4097)
    with pytest.raises(ValueError, match=r"n_classes must be an integer in \[2, 1000\]"):
        backprop.init_mlp_params(n_classes=1)
    with pytest.raises(ValueError, match=r"n_in must be an integer in \[1, 4096\]"):
        backprop.init_mlp_params(n_in=4097)
    with pytest.raises(ValueError, match=r"n_hidden must be an integer in \[1, 4096\]"):
        backprop.init_mlp_params(n_hidden=0)
    with pytest.raises(ValueError, match=r"n_classes must be an integer in \[2, 1000\]"):
        backprop.init_mlp_params(n_classes=1001)
    assert backprop.init_mlp_params(1, 1, 2)["W1"].shape == (1, 1)
    assert backprop.init_mlp_params(4096, 4096, 1000)["W2"].shape == (1000, 4096)


def test_mlp_loss_is_the_mean_cross_entropy_of_the_tanh_network():
    params = backprop.init_mlp_params(3, 4, 3, seed=1)
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    logits = torch.tanh(x @ params["W1"].T + params["b1"]) @ params["W2"].T + params["b2"]
    expected = -(torch.log_softmax(logits, dim=1)[torch.arange(6), y]).mean()
    assert backprop.mlp_loss(params, x, y).item() == pytest.approx(expected.item(), rel=1e-14)


@pytest.mark.parametrize("n", [1, 7, 32])
def test_manual_backward_equals_autograd_for_every_parameter(n):
    params = backprop.init_mlp_params(5, 7, 3, seed=n)
    x = torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    y = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(n + 1))
    manual = backprop.manual_mlp_gradients(params, x, y)
    reference = torch.autograd.grad(backprop.mlp_loss(params, x, y), list(params.values()))
    assert list(manual) == ["W1", "b1", "W2", "b2"]
    for (name, got), ref in zip(manual.items(), reference):
        assert got.shape == ref.shape, name
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)


def test_manual_backward_leaves_the_parameters_untouched_and_checks_shapes():
    params = backprop.init_mlp_params(5, 7, 3, seed=0)
    before = {k: v.detach().clone() for k, v in params.items()}
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    backprop.manual_mlp_gradients(params, x, y)
    assert all(torch.equal(before[k], params[k]) and params[k].grad is None for k in params)
    with pytest.raises(ValueError, match=r"x must have shape \(any, 5\), got \(4, 6\)"):
        backprop.manual_mlp_gradients(params, torch.randn(4, 6, dtype=torch.float64), y)
    with pytest.raises(ValueError, match=r"y must have shape \(4\), got \(3,\)"):
        backprop.manual_mlp_gradients(params, x, y[:3])


def test_central_difference_is_exact_up_to_its_known_truncation_term():
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    h = 1e-2
    grad, evaluations = backprop.central_difference(lambda v: (v ** 3).sum(), w, h)
    assert evaluations == 6
    torch.testing.assert_close(grad, 3 * w ** 2 + h ** 2, rtol=1e-10, atol=1e-12)   # (f(w+h)-f(w-h))/2h for w^3
    linear, _ = backprop.central_difference(lambda v: (torch.arange(3.0, dtype=v.dtype) * v).sum(), w, 0.5)
    torch.testing.assert_close(linear, torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    assert not w.requires_grad and torch.equal(w, torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))


def test_central_difference_refuses_bad_steps_and_shapes():
    with pytest.raises(ValueError, match=r"h must be a number in \(0.0, 1.0\], got 0.0"):
        backprop.central_difference(lambda w: w.sum(), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"h must be a number in \(0.0, 1.0\]"):
        backprop.central_difference(lambda w: w.sum(), torch.zeros(3), 1.5)
    assert backprop.central_difference(lambda w: w.sum(), torch.zeros(3), 1.0)[1] == 6
    with pytest.raises(ValueError, match=r"w must be a flat vector of at most 100000 numbers, got shape \(2, 2\)"):
        backprop.central_difference(lambda w: w.sum(), torch.zeros(2, 2), 0.1)
    with pytest.raises(ValueError, match="w must be a flat vector"):
        backprop.central_difference(lambda w: w.sum(), torch.zeros(100_001), 0.1)


def test_toy_loss_is_the_mse_of_a_tanh_layer_and_matches_its_dtype():
    loss, n = backprop.toy_loss(n_params=10, seed=2)
    assert n == 8                                     # 4 inputs x (10 // 4) outputs
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(16, 2, generator=generator, dtype=torch.float64)
    w = torch.linspace(-1, 1, 8, dtype=torch.float64)
    expected = ((torch.tanh(x @ w.reshape(2, 4).T) - target) ** 2).mean()
    assert loss(w).item() == pytest.approx(expected.item(), rel=1e-14)
    assert loss(w.float()).dtype == torch.float32
    assert loss(torch.cat([w, torch.ones(3, dtype=torch.float64)])).item() == pytest.approx(expected.item(), rel=1e-14)
    default_loss, default_n = backprop.toy_loss()
    same_loss, _ = backprop.toy_loss(n_params=40, seed=0)
    w40 = torch.linspace(-1, 1, 40, dtype=torch.float64)
    assert default_n == 40 and default_loss(w40).item() == same_loss(w40).item()
    assert backprop.toy_loss(n_params=4)[1] == 4 and backprop.toy_loss(n_params=100_000)[1] == 100_000
    with pytest.raises(ValueError, match=r"n_params must be an integer in \[4, 100000\]"):
        backprop.toy_loss(n_params=3)
    with pytest.raises(ValueError, match=r"n_params must be an integer in \[4, 100000\]"):
        backprop.toy_loss(n_params=100_001)


def test_custom_sigmoid_forward_and_backward_match_torch():
    x = torch.linspace(-4, 4, 9, dtype=torch.float64, requires_grad=True)
    out = backprop.SigmoidFn.apply(x)
    torch.testing.assert_close(out, torch.sigmoid(x.detach()))
    (g,) = torch.autograd.grad((out * torch.arange(9.0, dtype=torch.float64)).sum(), x)
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(g, torch.arange(9.0, dtype=torch.float64) * s * (1 - s))


def test_buggy_sigmoid_has_the_same_forward_and_a_backward_missing_one_factor():
    x = torch.linspace(-4, 4, 9, dtype=torch.float64, requires_grad=True)
    out = backprop.BuggySigmoidFn.apply(x)
    torch.testing.assert_close(out, torch.sigmoid(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, torch.sigmoid(x.detach()))
    assert not torch.autograd.gradcheck(backprop.BuggySigmoidFn.apply, (x,), raise_exception=False)
    assert torch.autograd.gradcheck(backprop.SigmoidFn.apply, (x,))
