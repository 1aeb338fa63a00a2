import math

import pytest
import torch

from helpers import metrics, models


def test_accuracy_and_nll_match_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    assert metrics.accuracy(logits, labels) == pytest.approx(2 / 3)
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(1 / (1 + math.e))
                 + math.log(math.exp(3) / (math.exp(3) + 1))) / 3
    assert metrics.nll(logits, labels) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        metrics.accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"logits must have shape \(n, classes\)"):
        metrics.nll(torch.zeros(3), labels)


def test_activation_gradient_norms_one_per_layer():
    torch.manual_seed(0)
    net = models.mlp(8, 3, width=16, depth=5, activation="sigmoid", init="xavier")
    norms = metrics.activation_gradient_norms(net, torch.randn(32, 8), torch.randint(0, 3, (32,)))
    assert len(norms) == 5 and all(n > 0 for n in norms)
    assert norms[0] < norms[-1]
    assert set(metrics.grad_norms(net)) == {f"blocks.{i}.linear.weight" for i in range(5)} | {"head.weight"}


def test_activation_stats_count_dead_and_saturated_units():
    hidden = [torch.tensor([[0.0, 0.0, 1.0, 2.0]]), torch.tensor([[0.999, -0.995, 0.1, 0.0]])]
    stats = metrics.activation_stats(hidden)
    assert stats["frac_zero"] == [0.5, 0.25]
    assert stats["frac_saturated"] == [0.5, 0.5]
    with pytest.raises(ValueError, match=r"saturation must be a number in \(0.0, 1.0\]"):
        metrics.activation_stats(hidden, saturation=0)
