"""helpers.scratch.quantization against hand-computed codes, exact integer products and PyTorch's int8 modules."""
import warnings

import pytest
import torch
from torch import nn

from helpers.models import mlp
from helpers.scratch import quantization


def uneven_rows(seed=0, rows=20, cols=30):
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * torch.logspace(-2, 0, rows)[:, None]


def test_codes_and_scales_by_hand():
    w = torch.tensor([[1.0, -0.5, 0.25], [0.1, 0.2, -0.4]])
    q, scale = quantization.quantize_symmetric(w, 8, "per_channel")
    assert torch.equal(q, torch.tensor([[127, -64, 32], [32, 64, -127]], dtype=torch.int8))  # half to even
    assert torch.allclose(scale, torch.tensor([[1.0], [0.4]]) / 127)
    q, scale = quantization.quantize_symmetric(w, 8, "per_tensor")
    assert torch.equal(q, torch.tensor([[127, -64, 32], [13, 25, -51]], dtype=torch.int8))
    assert scale.shape == () and torch.isclose(scale, torch.tensor(1 / 127))
    q, scale = quantization.quantize_symmetric(torch.tensor([[1.0, -0.6, 0.25], [0.1, 0.2, -0.4]]), 4, "per_channel")
    assert torch.equal(q, torch.tensor([[7, -4, 2], [2, 4, -7]], dtype=torch.int8))
    assert torch.allclose(scale, torch.tensor([[1.0], [0.4]]) / 7)
    q, _ = quantization.quantize_symmetric(torch.tensor([[1.0, 0.3]]), 2, "per_tensor")
    assert torch.equal(q, torch.tensor([[1, 0]], dtype=torch.int8))


@pytest.mark.parametrize("granularity", quantization.GRANULARITIES)
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_round_trip_error_is_at_most_half_a_step(granularity, bits):
    w = uneven_rows(bits)
    q, scale = quantization.quantize_symmetric(w, bits, granularity)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and int(q.abs().max()) == qmax
    restored = quantization.dequantize(q, scale)
    assert restored.dtype == torch.float32
    assert torch.equal(restored, q.float() * scale)
    assert ((restored - w).abs() <= scale / 2 + 1e-7).all()
    assert scale.shape == ((20, 1) if granularity == "per_channel" else ())


def test_per_channel_beats_per_tensor_on_uneven_rows_and_a_zero_row_is_safe():
    w = uneven_rows()
    error = {g: (quantization.dequantize(*quantization.quantize_symmetric(w, 8, g)) - w).pow(2).mean()
             for g in quantization.GRANULARITIES}
    assert error["per_channel"] < error["per_tensor"] / 4
    w[3] = 0.0
    q, scale = quantization.quantize_symmetric(w, 8, "per_channel")
    assert torch.isfinite(scale).all() and (scale > 0).all() and (q[3] == 0).all()


def test_activation_rows_by_hand():
    codes, scale = quantization.quantize_rows(torch.tensor([[2.0, -1.0], [0.5, 0.25]]))
    assert torch.equal(codes, torch.tensor([[127, -64], [127, 64]], dtype=torch.int8))
    assert torch.allclose(scale, torch.tensor([[2.0], [0.5]]) / 127)
    codes, scale = quantization.quantize_rows(torch.zeros(1, 3))
    assert (codes == 0).all() and (scale > 0).all()


def test_int_mm_padding_rules():
    assert quantization.int_mm_padding(3, 7, 9, "cpu") == (3, 7, 9)
    assert quantization.int_mm_padding(3, 7, 9, "cuda") == (24, 8, 16)
    assert quantization.int_mm_padding(359, 64, 256, "cuda") == (360, 64, 256)
    assert quantization.int_mm_padding(16, 8, 8, "cuda") == (24, 8, 8)
    assert quantization.int_mm_padding(24, 16, 8, "cuda") == (24, 16, 8)


@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 7, 9), (20, 16, 8), (17, 8, 8)])
def test_int8_matmul_is_exact_with_and_without_padding(shape):
    m, k, n = shape
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-127, 128, (m, k), generator=generator, dtype=torch.int8)
    b = torch.randint(-127, 128, (k, n), generator=generator, dtype=torch.int8)
    exact = a.long() @ b.long()
    for force_pad in (False, True):
        product = quantization.int8_matmul(a, b, force_pad=force_pad)
        assert product.shape == (m, n) and product.dtype == torch.int32
        assert torch.equal(product.long(), exact)


@pytest.mark.parametrize("granularity", quantization.GRANULARITIES)
@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_equals_the_dequantized_product(granularity, bias):
    linear = nn.Linear(12, 7, bias=bias)
    x = torch.randn(5, 12)
    layer = quantization.Int8Linear(linear, granularity)
    x_codes, x_scale = quantization.quantize_rows(x)
    w_codes, w_scale = quantization.quantize_symmetric(linear.weight.detach(), 8, granularity)
    expected = (x_codes.float() * x_scale) @ (w_codes.float() * w_scale).t()
    if bias:
        expected = expected + linear.bias.detach()
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)
        assert torch.allclose(layer(x), linear(x), atol=0.02 * linear(x).abs().max())
    assert layer.weight_t.dtype == torch.int8 and layer.weight_t.shape == (12, 7)
    assert layer.scale.shape == ((1, 7) if granularity == "per_channel" else (1, 1))
    assert granularity in repr(layer) and "in_features=12, out_features=7" in repr(layer)


def test_quantize_linears_replaces_every_linear_of_a_nested_model_with_dropout():
    model = mlp(12, 5, width=16, depth=2, dropout=0.3).eval()
    quantized = quantization.quantize_linears(model, "per_tensor")
    assert not any(isinstance(m, nn.Linear) for m in quantized.modules())
    assert sum(isinstance(m, quantization.Int8Linear) for m in quantized.modules()) == 3
    assert all(m.granularity == "per_tensor" for m in quantized.modules() if isinstance(m, quantization.Int8Linear))
    assert not quantized.training and any(isinstance(m, nn.Linear) for m in model.modules())
    x = torch.randn(9, 12)
    with torch.no_grad():
        assert (quantized(x) - model(x)).abs().max() < 0.05 * model(x).abs().max()


def test_fake_quantize_rounds_only_linear_weights_and_leaves_the_original():
    model = mlp(6, 3, width=8, depth=1, norm=None)
    rounded = quantization.fake_quantize(model, 3, "per_tensor")
    for original, copy in zip(model.modules(), rounded.modules()):
        if isinstance(original, nn.Linear):
            codes, scale = quantization.quantize_symmetric(original.weight.detach(), 3, "per_tensor")
            expected = quantization.dequantize(codes, scale)
            assert torch.equal(copy.weight.detach(), expected)
            assert torch.equal(copy.bias, original.bias)
            assert not torch.equal(copy.weight, original.weight)


def test_smooth_scales_by_hand_and_the_product_is_unchanged():
    peak, weight = torch.tensor([4.0, 1.0]), torch.tensor([[1.0, 0.5], [2.0, 0.25]])
    assert torch.allclose(quantization.smooth_scales(peak, weight, 0.5), torch.tensor([2 / 2 ** 0.5, 1 / 0.5 ** 0.5]))
    assert torch.allclose(quantization.smooth_scales(peak, weight, 1.0), peak)
    assert torch.allclose(quantization.smooth_scales(peak, weight, 0.0), torch.tensor([0.5, 2.0]))
    x = torch.randn(5, 2)
    scales = quantization.smooth_scales(x.abs().amax(0), weight)
    assert torch.allclose((x / scales) @ (weight * scales).t(), x @ weight.t(), atol=1e-5)


def test_library_route_is_per_tensor_by_default_and_per_channel_on_request():
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        per_tensor = quantization.library_quantize_dynamic(model)
        per_channel = quantization.library_quantize_dynamic(model, per_channel=True)
    assert per_tensor[0].weight().qscheme() == torch.per_tensor_affine
    assert per_channel[0].weight().qscheme() == torch.per_channel_affine
    assert isinstance(model[0], nn.Linear)
    x = torch.randn(4, 12)
    with torch.no_grad():
        assert (per_channel(x) - model(x)).abs().max() < 0.05 and (per_tensor(x) - model(x)).abs().max() < 0.05
    with warnings.catch_warnings(record=True) as caught:  # the filter does not outlive the call
        warnings.simplefilter("always")
        warnings.warn("torch.ao.quantization is deprecated", DeprecationWarning, stacklevel=1)
    assert caught


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="bits"):
        quantization.quantize_symmetric(torch.randn(3, 3), bits=1)
    with pytest.raises(ValueError, match="bits"):
        quantization.quantize_symmetric(torch.randn(3, 3), bits=9)
    with pytest.raises(ValueError, match="granularity"):
        quantization.quantize_symmetric(torch.randn(3, 3), granularity="per_row")
    with pytest.raises(ValueError, match="w must"):
        quantization.quantize_symmetric(torch.randn(3))
    with pytest.raises(ValueError, match="w must"):
        quantization.quantize_symmetric(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="x must"):
        quantization.quantize_rows(torch.randn(3))
    with pytest.raises(ValueError, match="a and b"):
        quantization.int8_matmul(torch.zeros(2, 3, dtype=torch.int8), torch.zeros(2, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match="a and b"):
        quantization.int8_matmul(torch.zeros(2, 3), torch.zeros(3, 2, dtype=torch.int8))
    with pytest.raises(ValueError, match="granularity"):
        quantization.quantize_linears(nn.Linear(2, 2), "per_row")
    with pytest.raises(ValueError, match="bits"):
        quantization.fake_quantize(nn.Linear(2, 2), bits=10)
    with pytest.raises(ValueError, match="alpha"):
        quantization.smooth_scales(torch.ones(2), torch.ones(2, 2), alpha=1.5)
    with pytest.raises(ValueError, match="activation_peak"):
        quantization.smooth_scales(torch.ones(3), torch.ones(2, 2))


@pytest.mark.parametrize("call,message", [
    (lambda: quantization.quantize_symmetric(torch.randn(3, 3), bits=1), r"^bits must be an integer in \[2, 8\]"),
    (lambda: quantization.quantize_symmetric(torch.randn(3, 3), bits=9), r"^bits must be an integer in \[2, 8\]"),
    (lambda: quantization.quantize_symmetric(torch.randn(3, 3), granularity="row"), r"^granularity must be one of"),
    (lambda: quantization.quantize_symmetric(torch.randn(3)), r"^w must be a 2-D floating-point tensor, got shape"),
    (lambda: quantization.quantize_rows(torch.ones(2, 2, dtype=torch.long)), r"^x must be a floating-point tensor"),
    (lambda: quantization.int8_matmul(torch.zeros(2, 3, dtype=torch.int8), torch.zeros(2, 3, dtype=torch.int8)),
     r"^a and b must be int8 matrices \(m, k\) and \(k, n\), got \(2, 3\)"),
    (lambda: quantization.int8_matmul(torch.zeros(3, dtype=torch.int8), torch.zeros(3, 2, dtype=torch.int8)),
     r"^a and b must"),
    (lambda: quantization.int8_matmul(torch.zeros(2, 3, dtype=torch.int8), torch.zeros(3, 2)), r"^a and b must"),
    (lambda: quantization.fake_quantize(nn.Linear(2, 2), bits=1), r"^bits must be an integer in \[2, 8\]"),
    (lambda: quantization.fake_quantize(nn.Linear(2, 2), granularity="row"), r"^granularity must be one of"),
    (lambda: quantization.smooth_scales(torch.ones(2), torch.ones(2, 2), alpha=-0.1), r"^alpha must be a number"),
    (lambda: quantization.smooth_scales(torch.ones(2), torch.ones(2)), r"^activation_peak must have shape"),
])
def test_messages_name_the_argument_and_its_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_bounds_themselves_are_allowed():
    w = torch.randn(3, 4)
    for bits in (2, 8):
        q, scale = quantization.quantize_symmetric(w, bits)
        assert int(q.abs().max()) == 2 ** (bits - 1) - 1
    assert quantization.smooth_scales(torch.ones(2), torch.ones(2, 2), alpha=0.0).shape == (2,)
    assert quantization.smooth_scales(torch.ones(2), torch.ones(2, 2), alpha=1.0).shape == (2,)
    two_bit_rows = quantization.fake_quantize(nn.Linear(2, 2), bits=2).weight       # one scale per output row
    assert all(row.unique().numel() <= 3 for row in two_bit_rows)                 # each row: -s, 0 or +s


def test_tiny_values_keep_a_positive_scale_and_a_zero_smoothing_factor_is_floored():
    _, scale = quantization.quantize_symmetric(torch.zeros(2, 2), 8, "per_tensor")
    assert scale.item() == pytest.approx(1e-12 / 127)
    _, scale = quantization.quantize_rows(torch.zeros(1, 2))
    assert scale.item() == pytest.approx(1e-12 / 127)
    factors = quantization.smooth_scales(torch.tensor([0.0, 4.0]), torch.tensor([[0.0, 1.0]]), alpha=0.5)
    assert torch.allclose(factors, torch.tensor([1.0, 2.0]))   # 1e-5 ** 0.5 / 1e-5 ** 0.5 and 4 ** 0.5 / 1


def test_defaults_are_int8_per_channel_on_the_cpu():
    w = uneven_rows()
    default, explicit = quantization.quantize_symmetric(w), quantization.quantize_symmetric(w, 8, "per_channel")
    assert torch.equal(default[0], explicit[0]) and torch.equal(default[1], explicit[1])
    linear = nn.Linear(4, 3)
    assert quantization.Int8Linear(linear).scale.shape == (1, 3)
    assert all(m.granularity == "per_channel" for m in quantization.quantize_linears(nn.Sequential(linear)).modules()
               if isinstance(m, quantization.Int8Linear))
    assert torch.equal(quantization.fake_quantize(nn.Sequential(linear))[0].weight,
                       quantization.fake_quantize(nn.Sequential(linear), 8, "per_channel")[0].weight)
    assert quantization.int_mm_padding(3, 9, 5) == (3, 9, 5)
    assert quantization.int_mm_padding(1, 9, 1, "cuda") == (24, 16, 8)
    peak, weight = torch.tensor([4.0, 1.0]), torch.tensor([[1.0, 0.5], [2.0, 0.25]])
    assert torch.equal(quantization.smooth_scales(peak, weight), quantization.smooth_scales(peak, weight, 0.5))
    with pytest.raises(ValueError, match=r"^granularity must be one of \['per_tensor', 'per_channel'\]"):
        quantization.quantize_linears(nn.Linear(2, 2), "row")


def test_padding_reaches_the_integer_kernel_only_where_it_is_needed(monkeypatch):
    shapes, original = [], torch._int_mm

    def spy(a, b):
        shapes.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b)

    monkeypatch.setattr(torch, "_int_mm", spy)
    a, b = torch.ones(3, 7, dtype=torch.int8), torch.ones(7, 9, dtype=torch.int8)
    assert torch.equal(quantization.int8_matmul(a, b, force_pad=True), torch.full((3, 9), 7, dtype=torch.int32))
    assert torch.equal(quantization.int8_matmul(a, b), torch.full((3, 9), 7, dtype=torch.int32))
    assert shapes == [((24, 8), (8, 16)), ((3, 7), (7, 9))]
