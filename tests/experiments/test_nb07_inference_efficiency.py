"""Experiments of notebook 07, part 1: quantization, pruning and batching runners, explorers and the checker."""
import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers.data import digits
from helpers.experiments import nb07_inference_efficiency as nb07
from helpers.models import mlp
from helpers.scratch import quantization
from helpers.scratch.distillation import train_student


def small_net(seed=0):
    return nb07.serving_mlp(12, 16, 5, depth=2, seed=seed)


def test_serving_mlp_shapes_and_reproducibility():
    net = small_net()
    assert [tuple(m.weight.shape) for m in net if isinstance(m, nn.Linear)] == [(16, 12), (16, 16), (5, 16)]
    assert not net.training and torch.equal(net[0].weight, small_net()[0].weight)
    with pytest.raises(ValueError, match="hidden"):
        nb07.serving_mlp(hidden=100_000)


def test_accuracy_runs_where_the_model_lives_even_without_parameters():
    data = digits(seed=0, device="cpu")
    torch.manual_seed(0)
    model = mlp(64, 10, width=8, depth=1)
    library = quantization.library_quantize_dynamic(model)
    assert not list(library.parameters()) and nb07.model_device(library) == torch.device("cpu")
    assert 0 <= nb07.accuracy(library, data.x_test, data.y_test) <= 1
    assert nb07.accuracy(model, data.x_test, data.y_test) == pytest.approx(
        (model(data.x_test).argmax(-1) == data.y_test).float().mean().item())
    three = data.y_test == 3
    assert nb07.class_recall(model, data.x_test, data.y_test, 3) == pytest.approx(
        nb07.accuracy(model, data.x_test[three], data.y_test[three]))
    with pytest.raises(ValueError, match="label"):
        nb07.class_recall(model, data.x_test, data.y_test, 11)


def test_weight_error_is_zero_on_the_grid_and_falls_with_bits():
    net = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[127.0, -1.0], [63.0, 2.0]]) / 127)
    assert nb07.weight_error(net, 8, "per_tensor") == pytest.approx(0.0, abs=1e-7)
    data = digits(seed=0, device="cpu")
    sweep = nb07.rounding_sweep(small_net(), data.x_test[:, :12], data.y_test % 5, [2, 4, 8])
    for granularity in quantization.GRANULARITIES:
        errors = sweep[granularity]["error"]
        assert errors[0] > errors[1] > errors[2] > 0 and len(sweep[granularity]["accuracy"]) == 3


def test_int8_versions_and_their_timing():
    versions = nb07.int8_versions(small_net())
    assert list(versions) == ["float32", "int8, from scratch", "int8, library, per tensor",
                              "int8, library, per channel"]
    times = nb07.time_versions(versions, [1, 4], 12, rounds=1)
    assert set(times) == {1, 4} and all(t > 0 for row in times.values() for t in row.values())


def test_outliers_hurt_the_ordinary_channels_and_smoothing_helps():
    errors = nb07.outlier_errors(seed=1)
    ordinary = {name: e["ordinary channels"] for name, e in errors.items()}
    assert ordinary["outliers"] > 10 * ordinary["no outliers"]
    assert ordinary["outliers, smoothed"] < ordinary["outliers"] / 3
    assert all(0 < e["layer output"] < 0.1 for e in errors.values())
    calm = nb07.outlier_errors(outlier_size=1.0)
    assert calm["outliers"]["ordinary channels"] == pytest.approx(calm["no outliers"]["ordinary channels"])
    with pytest.raises(ValueError, match="outlier_channels"):
        nb07.outlier_errors(width=4, outlier_channels=4)


def test_quantization_explorer_draws_and_explains():
    data = digits(seed=0, device="cpu")
    model = mlp(64, 10, width=16, depth=1)
    fig, numbers = nb07.quantization_explorer(model, data.x_test, data.y_test, bits=8, granularity="per_channel")
    assert fig.axes[0].has_data() and numbers["relative weight error"] < 0.01 and "note" not in numbers
    assert fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="bits"):
        nb07.quantization_explorer(model, data.x_test, data.y_test, bits=9)
    with pytest.raises(ValueError, match="granularity"):
        nb07.quantization_explorer(model, data.x_test, data.y_test, granularity="per_row")


def test_quantization_explorer_notes_a_broken_model():
    data = digits(seed=0, device="cpu")
    torch.manual_seed(1)
    model = mlp(64, 10, width=16, depth=1)
    train_student(model, data.x_train, data.y_train, epochs=10, seed=0)
    _, numbers = nb07.quantization_explorer(model, data.x_test, data.y_test, bits=2, granularity="per_tensor")
    assert numbers["test accuracy, rounded"] < numbers["test accuracy, float32"] - 0.05
    assert "rounding costs" in numbers["note"]


def test_pruning_runners():
    data = digits(seed=0, device="cpu")
    net = nb07.serving_mlp(64, 32, 10, seed=0)
    seen = []
    curves = nb07.pruning_sweep(net, data, [0.5, 0.9], finetune_epochs=1, progress=seen.append)
    assert len(curves["fine-tuned"]) == len(curves["no fine-tuning"]) == 2
    assert seen[-1] == pytest.approx(1.0) and len(seen) >= 4
    versions = nb07.pruned_versions(nb07.serving_mlp(12, 40, 5), density=0.1)
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.allclose(versions["torch.sparse"](x), versions["masked dense"](x), atol=1e-5)
    weights = [sum(m.weight.numel() for m in v.modules() if isinstance(m, nn.Linear)) for v in
               (versions["structured"], versions["dense"])]
    assert abs(weights[0] / weights[1] - 0.1) < 0.02


def test_capacity_by_hand():
    assert nb07.capacity({1: 1.0, 4: 2.0}, 4) == pytest.approx(2.0)
    assert nb07.capacity({1: 1.0, 4: 2.0}, 2) == pytest.approx(1.5)
    assert nb07.capacity({1: 1.0, 4: 2.0}, 1) == pytest.approx(1.0)
    assert nb07.capacity({1: 1.0, 2: 1.0, 8: 16.0}, 8) == pytest.approx(2.0)


def test_queue_growth_detector():
    assert nb07.queue_grows(np.linspace(1, 100, 1000))
    assert not nb07.queue_grows(np.ones(1000))
    assert not nb07.queue_grows(np.r_[np.ones(200), np.full(800, 10.0)])  # a warm-up from an empty queue


def test_serving_explorer_notes_a_stall_from_oversized_batches():
    table = {1: 1e-3, 16: 4e-3, 64: 0.2}                  # batches above 16 get far slower per request
    _, numbers = nb07.serving_explorer(table, load=3.5, max_batch=64)
    assert "kept growing" in numbers["note"] and "one at a time" in numbers["note"]
    _, numbers = nb07.serving_explorer(table, load=3.5, max_batch=16)
    assert "kept growing" not in numbers["note"]


TABLE = {1: 1e-3, 4: 1.5e-3, 16: 3e-3}


def test_serving_sweep_rows():
    rows = nb07.serving_sweep(TABLE, [0.25, 1.5, 9.0], 16, 2e-3, 2000, seed=0)
    assert len(rows) == 9 and {r["server"] for r in rows} == set(nb07.SERVERS)
    by = {(r["load"], r["server"]): r for r in rows}
    assert by[(0.25, "batching, no wait")]["p50 (ms)"] == pytest.approx(by[(0.25, "one at a time")]["p50 (ms)"])
    assert by[(0.25, "batching with a wait")]["p50 (ms)"] > 2
    assert not by[(1.5, "one at a time")]["stable"] and by[(1.5, "batching, no wait")]["stable"]
    assert by[(1.5, "batching, no wait")]["load / peak capacity"] == pytest.approx(1.5 * 3e-3 / 16 / 1e-3)
    # one at a time at light load: the worker computes for the load's share of the time
    assert by[(0.25, "one at a time")]["busy fraction"] == pytest.approx(0.25, abs=0.02)
    assert by[(0.25, "one at a time")]["passes per request"] == 1
    assert by[(9.0, "batching, no wait")]["busy fraction"] == pytest.approx(1.0, abs=0.01)
    # the wait forms fuller batches: fewer passes and less busy time for the same stream
    wait, no_wait = by[(1.5, "batching with a wait")], by[(1.5, "batching, no wait")]
    assert wait["passes per request"] < no_wait["passes per request"]
    assert wait["busy fraction"] < no_wait["busy fraction"] <= 1
    assert not by[(9.0, "batching, no wait")]["stable"]
    assert all(0 <= r["within target"] <= 1 for r in rows)


def test_serving_explorer_notes_and_speed():
    started = time.perf_counter()
    fig, numbers = nb07.serving_explorer(TABLE, load=1.5, max_batch=16, max_wait_ms=0.0)
    assert time.perf_counter() - started < 5
    assert "one at a time" in numbers["note"] and "grows without bound" in numbers["note"]
    assert len(fig.axes[0].get_lines()) == 3
    _, numbers = nb07.serving_explorer(TABLE, load=0.5, max_batch=1, max_wait_ms=0.0)
    assert "coincide" in numbers["note"]
    _, numbers = nb07.serving_explorer(TABLE, load=0.5, max_batch=16, max_wait_ms=1.0)
    assert "note" not in numbers and numbers["batching: p50 (ms)"] > numbers["one at a time: p50 (ms)"]
    _, numbers = nb07.serving_explorer(TABLE, load=9.0, max_batch=16)
    assert "batching" in numbers["note"]
    with pytest.raises(ValueError, match="load"):
        nb07.serving_explorer(TABLE, load=0.0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        nb07.serving_explorer(TABLE, max_wait_ms=-1)


def test_batch_table_times_every_size():
    table = nb07.batch_table(small_net(), [1, 4], 12, rounds=1)
    assert set(table) == {1, 4} and all(t > 0 for t in table.values())
    with pytest.raises(ValueError, match="batch_size"):
        nb07.batch_table(small_net(), [0], 12, 1)


def test_levers_rows():
    rows = nb07.levers_rows((4.0, 1.0, 3.0, -0.003), (35, -0.01, 0.9), (0.01, 0.3, 1.0, 2.0, 8.0), (2.5, 0.9, 0.7),
                            (6.0, 256, 2.0))
    assert len(rows) == 7 and rows[0]["speed"] == "1.0x at batch 1, 3.0x at 256"
    assert rows[2]["accuracy"] == "-0.010 oversized, -0.300 compact"
    assert all(set(r) == set(rows[0]) for r in rows)


def test_quantize_checker_never_raises(capsys):
    def right(w):
        scale = w.abs().amax(dim=1, keepdim=True) / 127
        return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale

    def truncates(w):
        scale = w.abs().max() / 127
        return (w / scale).to(torch.int8), scale

    def stub(w):
        raise NotImplementedError

    assert nb07.check_quantize_exercise(right)
    assert "Correct" in capsys.readouterr().out
    for wrong in (truncates, lambda w: (w, 1.0), lambda w: w, lambda w: (torch.zeros(3, dtype=torch.int8), 1.0),
                  lambda w: (torch.full_like(w, 127).to(torch.int8), -1.0), lambda w: 1 / 0):
        assert nb07.check_quantize_exercise(wrong) is False
    assert "Not quite" in capsys.readouterr().out
    assert nb07.check_quantize_exercise(stub) is False and nb07.check_quantize_exercise(None) is False
    assert "Not attempted" in capsys.readouterr().out


def test_flatten_class_keeps_the_mass_and_drops_the_information():
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0)) * 3
    flat = torch.softmax(nb07.flatten_class(logits, 4.0, 3) / 4.0, dim=1)
    probs = torch.softmax(logits / 4.0, dim=1)
    assert torch.allclose(flat[:, 3], probs[:, 3].mean().expand(50), atol=1e-6)
    assert torch.allclose(flat.sum(1), torch.ones(50), atol=1e-6)
    others = [c for c in range(10) if c != 3]
    ratio = flat[:, others] / probs[:, others]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)
    with pytest.raises(ValueError, match="label"):
        nb07.flatten_class(logits, 4.0, 10)


def test_int8_instructions_reads_the_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: X\nflags\t\t: fpu avx2 avx512f avx512_vnni amx_int8\n")
    assert nb07.int8_instructions(str(info)) == "int8 instructions: avx512_vnni, amx_int8"
    info.write_text("flags\t\t: fpu avx2\n")
    assert "none" in nb07.int8_instructions(str(info))
    assert "unknown" in nb07.int8_instructions(str(tmp_path / "missing"))


def test_wait_sweep_trades_busy_time_for_latency():
    sweep = nb07.wait_sweep(TABLE, 1.5, 16, [0.0, 1e-3, 4e-3], 2000, seed=0)
    assert set(sweep) == {"busy fraction", "within target", "p95 (ms)"} and len(sweep["p95 (ms)"]) == 3
    assert sweep["busy fraction"][0] > sweep["busy fraction"][-1]
    assert sweep["within target"][0] > sweep["within target"][-1]
    assert sweep["p95 (ms)"][-1] > 4     # a lone request at this load waits out most of the 4 ms
    with pytest.raises(ValueError, match="max_wait"):
        nb07.wait_sweep(TABLE, 1.5, 16, [-1.0], 100)
