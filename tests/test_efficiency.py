"""Tests for helpers.efficiency: quantization bounds, pruning shapes, serving simulation, checkers."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from helpers import efficiency as E
from helpers.models import mlp


def small_net(seed=0):
    return E.serving_mlp(12, 16, 5, depth=2, seed=seed)


@pytest.mark.parametrize("granularity", E.GRANULARITIES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_round_trip_error_is_at_most_half_a_step(granularity, bits):
    w = torch.randn(20, 30, generator=torch.Generator().manual_seed(bits)) * torch.logspace(-2, 0, 20)[:, None]
    q, scale = E.quantize_symmetric(w, bits, granularity)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 2 ** (bits - 1) - 1
    assert ((E.dequantize(q, scale) - w).abs() <= scale / 2 + 1e-7).all()
    assert scale.shape == ((20, 1) if granularity == "per_channel" else ())


def test_per_channel_loses_less_than_per_tensor_on_uneven_rows():
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(0)) * torch.logspace(-2, 0, 32)[:, None]
    err = {g: (E.dequantize(*E.quantize_symmetric(w, 8, g)) - w).pow(2).mean() for g in E.GRANULARITIES}
    assert err["per_channel"] < err["per_tensor"] / 4


@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 7, 9), (20, 16, 8)])
def test_int8_matmul_is_exact_with_and_without_padding(shape):
    m, k, n = shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-127, 128, (m, k), generator=gen, dtype=torch.int8)
    b = torch.randint(-127, 128, (k, n), generator=gen, dtype=torch.int8)
    exact = a.long() @ b.long()
    assert torch.equal(E.int8_matmul(a, b).long(), exact)
    assert torch.equal(E.int8_matmul(a, b, force_pad=True).long(), exact)
    assert E.int_mm_padding(3, 7, 9, "cuda") == (24, 8, 16)
    assert E.int_mm_padding(359, 64, 256, "cuda") == (360, 64, 256)
    assert E.int_mm_padding(3, 7, 9, "cpu") == (3, 7, 9)


@pytest.mark.parametrize("granularity", E.GRANULARITIES)
def test_int8_model_is_close_to_float_and_four_times_smaller(granularity):
    net = E.serving_mlp(64, 128, 10, seed=1)
    x = torch.randn(33, 64)
    q = E.quantize_model_int8(net, granularity)
    with torch.no_grad():
        ref, out = net(x), q(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert E.serialized_size(net) / E.serialized_size(q) > 3.0


def test_library_quantization_filters_only_its_deprecation_warnings(capsys):
    net = small_net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = E.library_quantize_dynamic(net)
    assert not [w for w in caught if "torch.ao.quantization is deprecated" in str(w.message)]
    assert "torchao" in capsys.readouterr().out
    with torch.no_grad():
        x = torch.randn(4, 12)
        assert (q(x) - net(x)).abs().max() < 0.05
    with warnings.catch_warnings(record=True) as caught:  # the filter does not outlive the call
        warnings.simplefilter("always")
        warnings.warn("torch.ao.quantization is deprecated", DeprecationWarning)
    assert caught


def test_mlp_from_helpers_models_converts():
    model = mlp(12, 5, width=16, depth=2).eval()
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(E.as_sequential(model)(x), model(x))
        assert E.quantize_model_int8(model)(x).shape == (3, 5)
    with pytest.raises(ValueError, match="model"):
        E.as_sequential(mlp(12, 5, width=16, depth=2, norm="layer"))


def test_distillation_loss_properties():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    assert E.distillation_loss(t, t, None, 3.0, 1.0).abs() < 1e-6
    assert E.distillation_loss(s, t, None, 3.0, 1.0) > 0
    hard = E.distillation_loss(s, t, y, 3.0, 0.0)
    assert torch.isclose(hard, nn.functional.cross_entropy(s, y))
    with pytest.raises(ValueError, match="labels"):
        E.distillation_loss(s, t, None, 3.0, 0.5)
    with pytest.raises(ValueError, match="temperature"):
        E.distillation_loss(s, t, y, 0.0, 0.5)


def test_student_learns_from_teacher_logits():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen)
    teacher_logits = x[:, :3] * 3
    y = teacher_logits.argmax(-1)
    student = nn.Linear(6, 3)
    losses = E.train_student(student, x, y, teacher_logits, temperature=2.0, alpha=1.0, epochs=30, lr=0.05)
    assert losses[-1] < losses[0] / 3
    assert E.accuracy_of(student, x, y) > 0.9
    xs, ys = E.without_class(x, y, 1)
    assert (ys != 1).all() and len(xs) == len(ys) < len(y)
    assert 0 <= E.class_recall(student, x, y, 1) <= 1


def test_global_magnitude_pruning_hits_sparsity_and_keeps_largest():
    net = small_net()
    pruned = E.make_pruning_permanent(E.global_magnitude_prune(net, 0.75))
    assert abs(E.weight_sparsity(pruned) - 0.75) < 0.01
    kept = torch.cat([m.weight.flatten() for m in E.linear_layers(pruned)])
    orig = torch.cat([m.weight.flatten() for m in E.linear_layers(net)])
    assert orig[kept == 0].abs().max() <= orig[kept != 0].abs().min()
    assert E.weight_sparsity(net) == 0.0  # the original is untouched


def test_structured_pruning_really_shrinks_layers():
    net = small_net()
    smaller = E.prune_neurons(net, 0.25)
    shapes = [tuple(m.weight.shape) for m in E.linear_layers(smaller)]
    assert shapes == [(4, 12), (4, 4), (5, 4)]
    assert sum(p.numel() for p in smaller.parameters()) < sum(p.numel() for p in net.parameters()) / 3
    assert smaller(torch.randn(2, 12)).shape == (2, 5)
    same = E.prune_neurons(net, 1.0)
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(same(x), net(x), atol=1e-6)
    with pytest.raises(ValueError, match="keep_fraction"):
        E.prune_neurons(net, 0.0)


def test_sparse_model_matches_masked_dense():
    pruned = E.make_pruning_permanent(E.global_magnitude_prune(small_net(), 0.9))
    x = torch.randn(5, 12)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.allclose(E.to_sparse(pruned)(x), pruned(x), atol=1e-5)


def test_matched_keep_fraction_matches_parameter_count():
    net = E.serving_mlp(784, 1024, 10)
    keep = E.matched_keep_fraction(net, 0.1)
    weights = sum(m.weight.numel() for m in E.linear_layers(E.prune_neurons(net, keep)))
    total = sum(m.weight.numel() for m in E.linear_layers(net))
    assert abs(weights / total - 0.1) < 0.01


def test_timing_helpers_return_positive_seconds():
    t = E.time_many({"a": lambda: sum(range(100)), "b": lambda: sum(range(10))}, rounds=2, min_run_time=0.001)
    assert t["a"] > 0 and t["b"] > 0
    assert "cpu" in E.device_note("cpu")
    table = E.batch_latencies(small_net(), [1, 4], 12, rounds=1, min_run_time=0.001)
    assert set(table) == {1, 4}


def test_serving_simulation_by_hand():
    table = {1: 1.0, 2: 1.5}
    arrivals = np.array([0.0, 0.1, 0.2, 5.0])
    single = E.simulate_serving(table, arrivals, 1, 0.0)
    assert np.allclose(single.latencies, [1.0, 1.9, 2.8, 1.0])
    batched = E.simulate_serving(table, arrivals, 2, 0.5)
    # first batch closes when the second request arrives (0.1); the third waits for the worker (free at 1.6)
    assert np.allclose(batched.latencies, [1.6, 1.5, 2.4, 1.5])
    assert list(batched.batch_sizes) == [2, 1, 1]
    assert batched.duration == pytest.approx(6.5)


def test_batching_raises_throughput_under_heavy_load():
    table = {1: 1e-3, 32: 4e-3}
    arrivals = E.poisson_arrivals(3000.0, 3000, seed=0)
    single = E.simulate_serving(table, arrivals, 1, 0.0)
    batched = E.simulate_serving(table, arrivals, 32, 2e-3)
    assert batched.throughput > 2.5 * single.throughput
    assert batched.percentile(95) < single.percentile(95)
    rows = E.serving_sweep(table, [100.0, 3000.0], n_requests=500, max_wait=2e-3)
    assert rows[0]["batched_p50"] > rows[0]["single_p50"]


def test_explorers_return_figures_and_numbers():
    net = small_net()
    x, y = torch.randn(40, 12), torch.randint(0, 5, (40,))
    fig, numbers = E.quantization_explorer(net, x, y, bits=3, granularity="per_tensor")
    assert fig.axes and 0 <= numbers["accuracy (quantized)"] <= 1
    fig, numbers = E.serving_explorer({1: 1e-3, 32: 4e-3}, rate_per_ms=2.0, max_batch=16, max_wait_ms=1.0)
    assert numbers["batched: throughput (req/ms)"] > numbers["one at a time: throughput (req/ms)"]
    with pytest.raises(ValueError, match="bits"):
        E.quantization_explorer(net, x, y, bits=9)
    with pytest.raises(ValueError, match="rate_per_ms"):
        E.serving_explorer({1: 1e-3}, rate_per_ms=-1)


def test_validation():
    with pytest.raises(ValueError, match="bits"):
        E.quantize_symmetric(torch.randn(3, 3), bits=1)
    with pytest.raises(ValueError, match="granularity"):
        E.quantize_symmetric(torch.randn(3, 3), granularity="per_row")
    with pytest.raises(ValueError, match="w must"):
        E.quantize_symmetric(torch.randn(3))
    with pytest.raises(ValueError, match="a and b"):
        E.int8_matmul(torch.zeros(2, 3, dtype=torch.int8), torch.zeros(2, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match="sparsity"):
        E.global_magnitude_prune(small_net(), 1.0)
    with pytest.raises(ValueError, match="max_batch"):
        E.simulate_serving({1: 1.0}, np.array([0.0]), 0)
    with pytest.raises(ValueError, match="arrivals"):
        E.simulate_serving({1: 1.0}, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="rate"):
        E.poisson_arrivals(0.0, 10)
    with pytest.raises(ValueError, match="batch_size"):
        E.batch_latencies(small_net(), [0], 12)
    with pytest.raises(ValueError, match="hidden"):
        E.serving_mlp(hidden=100_000)


def test_quantize_checker_accepts_right_and_rejects_wrong(capsys):
    def right(w):
        scale = w.abs().amax(dim=1, keepdim=True) / 127
        return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale

    def truncates(w):
        scale = w.abs().max() / 127
        return (w / scale).to(torch.int8), scale

    def stub(w):
        raise NotImplementedError

    assert E.check_quantize_exercise(right)
    assert E.check_quantize_exercise(lambda w: None) is False
    assert E.check_quantize_exercise(stub) is False
    assert "Not attempted" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="scale/2"):
        E.check_quantize_exercise(truncates)


def test_kv_checker_accepts_right_and_rejects_wrong():
    def right(n_layers, n_heads, head_dim, seq_len, bytes_per_value, batch):
        return 2 * n_layers * n_heads * head_dim * seq_len * bytes_per_value * batch

    def forgot_v(n_layers, n_heads, head_dim, seq_len, bytes_per_value, batch):
        return n_layers * n_heads * head_dim * seq_len * bytes_per_value * batch

    def stub(**kwargs):
        raise NotImplementedError

    assert E.check_kv_cache_exercise(right)
    assert E.check_kv_cache_exercise(stub) is False
    with pytest.raises(AssertionError, match="factor 2"):
        E.check_kv_cache_exercise(forgot_v)


def test_levers_markdown():
    table = E.levers_markdown([{"lever": "a", "speed": "2x"}, {"lever": "b", "speed": "1x"}])
    assert table.splitlines()[0] == "| lever | speed |" and table.count("\n") == 3
    with pytest.raises(ValueError):
        E.levers_markdown([])


def test_sweeps_and_levers_table():
    from helpers.data import digits
    net = E.serving_mlp(64, 32, 10, seed=0)
    data = digits(seed=0, device="cpu")
    rows = E.rounding_sweep(net, data.x_test, data.y_test, [2, 8])
    assert rows["per_channel"]["error"][1] < rows["per_channel"]["error"][0]
    assert rows["per_channel"]["error"][1] <= rows["per_tensor"]["error"][1] * 1.01
    pr = E.pruning_sweep(net, data, [0.5], finetune_epochs=1)
    assert len(pr["fine-tuned"]) == len(pr["no fine-tuning"]) == 1
    table = E.levers_table(4.0, 1.0, 3.0, -0.003, 35, -0.01, -0.008, -0.005, 1.0, 2.0, 8.0, -0.01, 2.0, 3.0, 6.0,
                           256, 2.0)
    assert table.count("\n") == 8 and "3.0x at 256" in table


def test_prune_neurons_keeps_the_weights_device_and_dtype():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    small = E.prune_neurons(model, 0.5)
    assert all(p.dtype == torch.float64 for p in small.parameters())
    assert small(torch.randn(2, 6, dtype=torch.float64)).shape == (2, 3)
