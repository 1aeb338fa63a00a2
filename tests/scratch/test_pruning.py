"""helpers.scratch.pruning against hand-built layers: which weights go, which neurons stay, what the output is."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from helpers.models import mlp
from helpers.scratch import pruning


def hand_net():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
        net[2].weight.copy_(torch.tensor([[0.5, 5.0]]))
    return net


def stack(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))


def test_linear_layers_in_order():
    net = stack()
    assert pruning.linear_layers(net) == [net[0], net[2], net[4]]


def test_global_magnitude_pruning_by_hand_keeps_masks_through_training():
    net = hand_net()
    pruned = pruning.global_magnitude_prune(net, 0.5)
    assert torch.equal(pruned[0].weight, torch.tensor([[0.0, 0.0], [3.0, -4.0]]))
    assert torch.equal(pruned[2].weight, torch.tensor([[0.0, 5.0]]))
    assert torch.equal(net[0].weight, hand_net()[0].weight)  # the original is untouched
    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.1)
    pruned(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    assert pruned[0].weight[0].abs().sum() == 0 and pruned[2].weight[0, 0] == 0


def test_pruning_hits_the_sparsity_and_removes_the_smallest():
    net = stack()
    pruned = pruning.make_pruning_permanent(pruning.global_magnitude_prune(net, 0.75))
    assert abs(pruning.weight_sparsity(pruned) - 0.75) < 0.01
    kept = torch.cat([m.weight.flatten() for m in pruning.linear_layers(pruned)])
    original = torch.cat([m.weight.flatten() for m in pruning.linear_layers(net)])
    assert original[kept == 0].abs().max() <= original[kept != 0].abs().min()
    assert torch.equal(kept[kept != 0], original[kept != 0])
    assert pruning.weight_sparsity(net) == 0.0


def test_make_pruning_permanent_folds_the_mask():
    pruned = pruning.global_magnitude_prune(hand_net(), 0.5)
    assert prune.is_pruned(pruned[0])
    pruning.make_pruning_permanent(pruned)
    assert not prune.is_pruned(pruned[0]) and not hasattr(pruned[0], "weight_orig")
    assert isinstance(pruned[0].weight, nn.Parameter)
    assert torch.equal(pruned[0].weight, torch.tensor([[0.0, 0.0], [3.0, -4.0]]))


def test_weight_sparsity_by_hand():
    net = hand_net()
    with torch.no_grad():
        net[0].weight[0, 0] = 0.0
    assert pruning.weight_sparsity(net) == pytest.approx(1 / 6)


def test_linear_stack_flattens_an_mlp_with_dropout_and_rejects_what_it_cannot():
    model = mlp(12, 5, width=16, depth=2, dropout=0.5).eval()
    flat = pruning.linear_stack(model)
    assert isinstance(flat, nn.Sequential) and not flat.training
    assert [type(m) for m in flat] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(flat(x), model(x))
    assert flat[0] is not model.blocks[0].linear
    net = stack()
    assert pruning.linear_stack(net) is not net and torch.equal(pruning.linear_stack(net)[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="model must"):
        pruning.linear_stack(mlp(12, 5, width=16, depth=2, norm="layer"))
    with pytest.raises(ValueError, match="model must"):
        pruning.linear_stack(mlp(12, 5, width=16, depth=2, residual=True))
    with pytest.raises(ValueError, match="model must"):
        pruning.linear_stack(nn.Linear(2, 2))


def test_prune_neurons_keeps_the_largest_rows_and_their_columns():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.1, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 2.0]]))
        net[0].bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        net[2].weight.copy_(torch.arange(8.0).view(2, 4))
    small = pruning.prune_neurons(net, 0.5)
    assert torch.equal(small[0].weight, net[0].weight[[1, 3]]) and torch.equal(small[0].bias, torch.tensor([2.0, 4.0]))
    assert torch.equal(small[2].weight, net[2].weight[:, [1, 3]]) and torch.equal(small[2].bias, net[2].bias)
    x = torch.randn(5, 3)
    with torch.no_grad():
        hidden = torch.relu(x @ net[0].weight[[1, 3]].t() + net[0].bias[[1, 3]])
        assert torch.allclose(small(x), hidden @ net[2].weight[:, [1, 3]].t() + net[2].bias)


def test_prune_neurons_shapes_identity_and_dtype():
    net = stack()
    smaller = pruning.prune_neurons(net, 0.25)
    assert [tuple(m.weight.shape) for m in pruning.linear_layers(smaller)] == [(4, 12), (4, 4), (5, 4)]
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(pruning.prune_neurons(net, 1.0)(x), net(x), atol=1e-6)
    tiny = pruning.prune_neurons(net, 0.01)
    assert [tuple(m.weight.shape) for m in pruning.linear_layers(tiny)] == [(1, 12), (1, 1), (5, 1)]
    double = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3, bias=False)).double()
    halved = pruning.prune_neurons(double, 0.5)
    assert all(p.dtype == torch.float64 for p in halved.parameters()) and halved[2].bias is None
    assert halved(torch.randn(2, 6, dtype=torch.float64)).shape == (2, 3)
    assert pruning.prune_neurons(net.train(), 0.5).training


def test_matched_keep_fraction_leaves_the_asked_share_of_weights():
    net = nn.Sequential(nn.Linear(100, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
    total = sum(m.weight.numel() for m in pruning.linear_layers(net))
    for density in (0.1, 0.3, 0.6):
        keep = pruning.matched_keep_fraction(net, density)
        weights = sum(m.weight.numel() for m in pruning.linear_layers(pruning.prune_neurons(net, keep)))
        assert abs(weights / total - density) < 0.01
    assert pruning.matched_keep_fraction(net, 1.0) == pytest.approx(1.0, abs=0.005)
    assert pruning.matched_keep_fraction(net, 0.1) < pruning.matched_keep_fraction(net, 0.3)


def test_sparse_layers_match_the_masked_dense_ones():
    pruned = pruning.make_pruning_permanent(pruning.global_magnitude_prune(stack(), 0.9))
    sparse = pruning.to_sparse(pruned)
    layers = [m for m in sparse if isinstance(m, pruning.SparseLinear)]
    assert len(layers) == 3 and all(m.weight.layout == torch.sparse_csr for m in layers)
    assert layers[0].weight._nnz() == int((pruned[0].weight != 0).sum())
    x = torch.randn(5, 12)
    with torch.no_grad():
        assert torch.allclose(sparse(x), pruned(x), atol=1e-5)
    no_bias = pruning.SparseLinear(nn.Linear(4, 3, bias=False))
    assert no_bias.bias is None and torch.allclose(no_bias(torch.eye(4)), no_bias.weight.to_dense().t())


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="sparsity"):
        pruning.global_magnitude_prune(stack(), 1.0)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.global_magnitude_prune(stack(), -0.1)
    with pytest.raises(ValueError, match="model must contain"):
        pruning.global_magnitude_prune(nn.ReLU(), 0.5)
    with pytest.raises(ValueError, match="keep_fraction"):
        pruning.prune_neurons(stack(), 0.0)
    with pytest.raises(ValueError, match="at least two"):
        pruning.prune_neurons(nn.Sequential(nn.Linear(2, 2)), 0.5)
    with pytest.raises(ValueError, match="density"):
        pruning.matched_keep_fraction(stack(), 0.0)


@pytest.mark.parametrize("call,message", [
    (lambda: pruning.global_magnitude_prune(stack(), 1.0), r"^sparsity must be a number in \[0.0, 1.0\)"),
    (lambda: pruning.global_magnitude_prune(nn.ReLU(), 0.5), r"^model must contain at least one nn.Linear$"),
    (lambda: pruning.prune_neurons(stack(), 1.5), r"^keep_fraction must be a number in \(0.0, 1.0\]"),
    (lambda: pruning.prune_neurons(nn.Sequential(nn.Linear(2, 2)), 0.5), r"^model must have at least two nn.Linear"),
    (lambda: pruning.matched_keep_fraction(stack(), 1.5), r"^density must be a number in \(0.0, 1.0\]"),
    (lambda: pruning.linear_stack(nn.Linear(2, 2)), r"^model must be an nn.Sequential or a helpers.models.MLP"),
])
def test_messages_name_the_argument_and_its_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_bounds_themselves_are_allowed():
    assert pruning.weight_sparsity(pruning.make_pruning_permanent(pruning.global_magnitude_prune(stack(), 0.0))) == 0
    everything = pruning.prune_neurons(stack(), pruning.matched_keep_fraction(stack(), 1.0))
    assert [tuple(m.weight.shape) for m in pruning.linear_layers(everything)] == [(16, 12), (16, 16), (5, 16)]


def test_linear_stack_keeps_train_mode_and_the_head_last():
    model = mlp(12, 5, width=16, depth=1).train()
    flat = pruning.linear_stack(model)
    assert flat.training and flat[-1] is not model.head and torch.equal(flat[-1].weight, model.head.weight)
