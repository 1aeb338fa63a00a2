"""Batch normalization written out agrees with torch.nn.functional.batch_norm in both modes."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from helpers.scratch.normalization import batch_norm


def inputs(batch=6, features=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = 3.0 + 2.0 * torch.randn(batch, features, generator=generator, dtype=torch.float64)
    weight = torch.rand(features, generator=generator, dtype=torch.float64) + 0.5
    bias = torch.randn(features, generator=generator, dtype=torch.float64)
    mean = torch.randn(features, generator=generator, dtype=torch.float64)
    var = torch.rand(features, generator=generator, dtype=torch.float64) + 0.5
    return x, weight, bias, mean, var


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 0.5)])
def test_training_mode_matches_torch_including_the_running_averages(momentum, eps):
    x, weight, bias, mean, var = inputs()
    ours_mean, ours_var, their_mean, their_var = mean.clone(), var.clone(), mean.clone(), var.clone()
    ours = batch_norm(x, ours_mean, ours_var, weight, bias, training=True, momentum=momentum, eps=eps)
    theirs = functional.batch_norm(x, their_mean, their_var, weight, bias, training=True, momentum=momentum, eps=eps)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours_mean, their_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours_var, their_var, rtol=0, atol=1e-12)
    assert not torch.equal(ours_mean, mean) and not torch.equal(ours_var, var)


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_eval_mode_matches_torch_and_leaves_the_running_averages_alone(eps):
    x, weight, bias, mean, var = inputs(seed=1)
    before_mean, before_var = mean.clone(), var.clone()
    ours = batch_norm(x, mean, var, weight, bias, training=False, eps=eps)
    theirs = functional.batch_norm(x, before_mean, before_var, weight, bias, training=False, eps=eps)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    assert torch.equal(mean, before_mean) and torch.equal(var, before_var)


def test_without_weight_and_bias_each_feature_is_standardised_over_the_batch():
    x, _, _, mean, var = inputs(batch=50, seed=2)
    y = batch_norm(x, mean, var, training=True, eps=1e-12)
    torch.testing.assert_close(y.mean(dim=0), torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(y.var(dim=0, unbiased=False), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(y, functional.batch_norm(x, mean.clone(), var.clone(), training=True, eps=1e-12),
                               rtol=0, atol=1e-12)


def test_weight_alone_and_bias_alone_are_applied():
    x, weight, bias, mean, var = inputs(seed=3)
    for w, b in ((weight, None), (None, bias)):
        torch.testing.assert_close(batch_norm(x, mean, var, w, b), functional.batch_norm(x, mean, var, w, b),
                                   rtol=0, atol=1e-12)


def test_an_example_in_eval_mode_does_not_depend_on_its_companions():
    x, weight, bias, mean, var = inputs(seed=4)
    other = x.clone()
    other[1:] = -other[1:] * 5
    assert torch.equal(batch_norm(x, mean, var, weight, bias)[0], batch_norm(other, mean, var, weight, bias)[0])
    changed = batch_norm(other, mean.clone(), var.clone(), training=True)[0]
    assert not torch.allclose(batch_norm(x, mean.clone(), var.clone(), training=True)[0], changed)


def test_a_batch_of_two_becomes_plus_and_minus_one():
    x, _, _, mean, var = inputs(batch=2, seed=5)
    y = batch_norm(x, mean, var, training=True, eps=1e-12)
    torch.testing.assert_close(y[0], -y[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(y.abs(), torch.ones_like(y), rtol=0, atol=1e-9)


def test_momentum_edges_are_allowed():
    x, _, _, mean, var = inputs(seed=6)
    kept_mean, kept_var = mean.clone(), var.clone()
    batch_norm(x, kept_mean, kept_var, training=True, momentum=0.0)
    assert torch.equal(kept_mean, mean) and torch.equal(kept_var, var)
    batch_norm(x, kept_mean, kept_var, training=True, momentum=1.0)
    torch.testing.assert_close(kept_mean, x.mean(dim=0), rtol=0, atol=1e-12)
    torch.testing.assert_close(kept_var, x.var(dim=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape, message", [((6,), "x must have shape"), ((2, 3, 5), "x must have shape")])
def test_inputs_that_are_not_a_batch_of_vectors_are_refused(shape, message):
    with pytest.raises(ValueError, match=message):
        batch_norm(torch.zeros(shape), torch.zeros(5), torch.ones(5))


def test_running_statistics_of_the_wrong_size_are_refused():
    x, _, _, mean, var = inputs()
    with pytest.raises(ValueError, match=r"running_mean and running_var must have shape \(5,\)"):
        batch_norm(x, mean[:4], var)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batch_norm(x, mean, var[:4])


def test_a_batch_of_one_is_refused_in_training_but_not_in_eval():
    x, _, _, mean, var = inputs(batch=1)
    with pytest.raises(ValueError, match="at least 2 examples in training mode .*, got 1$"):
        batch_norm(x, mean, var, training=True)
    assert batch_norm(x, mean, var).shape == (1, 5)


@pytest.mark.parametrize("kwargs, name", [({"momentum": -0.1}, "momentum"), ({"momentum": 1.1}, "momentum"),
                                          ({"eps": 0.0}, "eps"), ({"eps": 1.5}, "eps")])
def test_momentum_and_eps_are_checked(kwargs, name):
    x, _, _, mean, var = inputs()
    with pytest.raises(ValueError, match=f"^{name} must be a number"):
        batch_norm(x, mean, var, training=True, **kwargs)


def test_eps_of_one_is_allowed():
    x, _, _, mean, var = inputs()
    torch.testing.assert_close(batch_norm(x, mean, var, eps=1.0), functional.batch_norm(x, mean, var, eps=1.0),
                               rtol=0, atol=1e-12)
