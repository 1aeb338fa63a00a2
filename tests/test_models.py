import pytest
import torch

from helpers import models


def test_mlp_shapes_and_hidden_activations():
    net = models.mlp(10, 3, width=16, depth=4)
    logits, hidden = net.forward_with_hidden(torch.randn(8, 10))
    assert logits.shape == (8, 3) and len(hidden) == 4 and all(h.shape == (8, 16) for h in hidden)
    assert models.count_parameters(net) == 10 * 16 + 16 + 3 * (16 * 16 + 16) + 16 * 3 + 3


@pytest.mark.parametrize("init, expected_std", [("he", (2 / 256) ** 0.5), ("naive", 1.0), ("xavier", (2 / 512) ** 0.5)])
def test_initialisation_scales(init, expected_std):
    net = models.mlp(256, 256, width=256, depth=3, init=init)
    std = net.blocks[1].linear.weight.std().item()
    assert abs(std - expected_std) / expected_std < 0.05
    assert net.blocks[1].linear.bias.abs().max() == 0


def test_residual_norm_and_dropout_options():
    net = models.mlp(4, 2, width=8, depth=3, norm="layer", residual=True, dropout=0.5)
    assert isinstance(net.blocks[1].norm, torch.nn.LayerNorm) and net.blocks[1].residual
    assert not net.blocks[0].residual
    net.eval()
    x = torch.randn(5, 4)
    assert torch.equal(net(x), net(x))
    bn = models.mlp(4, 2, width=8, depth=2, norm="batch")
    assert isinstance(bn.blocks[1].norm, torch.nn.BatchNorm1d)


def test_cnn1d_on_mnist1d_shaped_input():
    net = models.cnn1d()
    assert net(torch.randn(7, 40)).shape == (7, 10)
    assert net(torch.randn(7, 1, 40)).shape == (7, 10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=-4), r"width must be an integer in \[1, 4096\]"),
    (dict(width=5000), r"width must be an integer in \[1, 4096\]"),
    (dict(depth=101), r"depth must be an integer in \[1, 100\]"),
    (dict(activation="swish2"), r"activation must be one of \["),
    (dict(init="orthogonal"), r"init must be one of \["),
    (dict(norm="group"), r"norm must be one of \["),
    (dict(dropout=1.0), r"dropout must be a number in \[0.0, 1.0\)"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.mlp(4, 2, **kwargs)
    with pytest.raises(ValueError, match=r"channels must be an integer in \[1, 1024\]"):
        models.cnn1d(channels=0)


def test_cnn_with_full_resolution_first_layer_and_global_average_pooling():
    net = models.cnn1d(10, channels=8, length=40, first_stride=1, pooling="average")
    x = torch.randn(3, 40)
    assert net(x).shape == (3, 10) and net.head.in_features == 8
    assert models.cnn1d(10, channels=8, length=40).head.in_features == 8 * 5
    with pytest.raises(ValueError, match="pooling must be one of"):
        models.cnn1d(pooling="max")


def test_serialized_size_counts_float32_weights_and_quantized_models():
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Dropout(0.1)).eval()
    full = models.serialized_size(net)
    assert 256 * 257 * 4 <= full < 256 * 257 * 4 + 4096
    quantized = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    assert full / models.serialized_size(quantized) > 3
