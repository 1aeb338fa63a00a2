"""NaN hunting: the hand-written loss, the guard, the hooks and the anomaly replay."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional

from helpers.scratch import nan_hunting


def test_naive_cross_entropy_matches_torch_until_a_probability_underflows():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    expected = functional.cross_entropy(logits, y).item()
    assert nan_hunting.naive_cross_entropy(logits, y).item() == pytest.approx(expected)
    extreme = torch.tensor([[200.0, 0.0, -200.0]], requires_grad=True)
    loss = nan_hunting.naive_cross_entropy(extreme, torch.tensor([0]))
    assert math.isfinite(loss.item())
    loss.backward()
    assert torch.isnan(extreme.grad).any()
    safe = extreme.detach().requires_grad_()
    functional.cross_entropy(safe, torch.tensor([0])).backward()
    assert torch.isfinite(safe.grad).all()


def test_the_guard_and_the_names_of_non_finite_gradients():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert nan_hunting.gradients_finite(model)
    model(torch.ones(1, 2)).sum().backward()
    assert nan_hunting.gradients_finite(model) and nan_hunting.non_finite_gradients(model) == []
    model[1].bias.grad[0] = math.inf
    assert not nan_hunting.gradients_finite(model)
    assert nan_hunting.non_finite_gradients(model) == ["1.bias"]
    model[0].weight.grad[0, 0] = math.nan
    assert nan_hunting.non_finite_gradients(model) == ["0.weight", "1.bias"]


def test_forward_hooks_name_the_first_module_with_a_non_finite_output():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Linear(2, 1))
    with nan_hunting.FirstNonFiniteOutput(model) as hooks:
        model(torch.ones(1, 2))
    assert hooks.culprit is None
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with nan_hunting.FirstNonFiniteOutput(model) as hooks:
        model(torch.ones(1, 2))
    assert hooks.culprit == "2"
    assert all(not module._forward_hooks for module in model.modules())


def test_anomaly_replay_names_the_backward_function_that_made_the_nan():
    extreme = torch.tensor([[200.0, 0.0, -200.0]], requires_grad=True)
    assert nan_hunting.anomaly_origin(
        lambda: nan_hunting.naive_cross_entropy(extreme, torch.tensor([0])).backward()) == "LogBackward0"
    assert nan_hunting.anomaly_origin(lambda: functional.cross_entropy(extreme, torch.tensor([0])).backward()) is None
    assert not torch.is_anomaly_enabled()

    def other_error():
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        nan_hunting.anomaly_origin(other_error)


def test_hooks_watch_only_leaf_modules_and_the_replay_is_silent():
    import warnings

    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 1))
    with nan_hunting.FirstNonFiniteOutput(model) as hooks:
        assert len(hooks.handles) == 2
        with torch.no_grad():
            model[0][0].bias[0] = math.inf
        model(torch.ones(1, 2))
    assert hooks.culprit == "0.0" and hooks.handles and not any(m._forward_hooks for m in model.modules())
    extreme = torch.tensor([[200.0, 0.0, -200.0]], requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nan_hunting.anomaly_origin(lambda: nan_hunting.naive_cross_entropy(extreme, torch.tensor([0])).backward())
    assert caught == []
