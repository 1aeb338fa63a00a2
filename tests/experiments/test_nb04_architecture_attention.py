"""Notebook 04, section 1: operation counts, allocations, timings, the memory explorer and the mask checker."""
from __future__ import annotations

import math

import pytest
import torch

from helpers.experiments import nb04_architecture_attention as cost


@pytest.fixture(scope="module")
def layers():
    return cost.make_layers(width=16, seed=0)


def test_the_recorder_counts_operations_and_the_largest_result():
    x = torch.ones(10, 20)
    recorder = cost.record(lambda: (x @ x.T).sum())
    assert recorder.operations == 3  # transpose, matmul, sum
    assert recorder.largest_bytes == 10 * 10 * 4  # the transpose is a view of x: no allocation


def test_the_recorder_measures_dependency_depth_not_operation_count():
    x = torch.ones(8, 4)
    chain = cost.record(lambda: x.exp().exp().exp())
    assert (chain.depth, chain.operations) == (3, 3)
    side_by_side = cost.record(lambda: [x.exp(), x.exp(), x.exp()])
    assert (side_by_side.depth, side_by_side.operations) == (1, 3)
    looped = cost.record(lambda: torch.stack([row.exp() for row in x]))  # unbind, 8 independent exps, stack
    assert (looped.depth, looped.operations) == (3, 10)


def test_attention_depth_does_not_grow_with_length_but_gru_depth_does(layers):
    short, long = cost.dependency_depths(layers, [8, 32])
    assert short["attention depth"] == long["attention depth"] > 5
    assert short["attention ops"] == long["attention ops"]
    assert 3.5 < long["GRU depth"] / short["GRU depth"] < 4.1
    assert 3.5 < long["GRU ops"] / short["GRU ops"] < 4.1


def test_allocations_are_quadratic_written_out_and_linear_fused(layers):
    lengths = [16, 32, 64]
    largest = cost.allocations(layers, lengths)
    assert largest["attention written out"] == [n * n * 4 for n in lengths]
    assert largest["fused attention (PyTorch)"] == [n * 16 * 4 for n in lengths]
    assert cost.slope(lengths, largest["attention written out"]) == pytest.approx(2.0)
    assert cost.slope(lengths, largest["fused attention (PyTorch)"]) == pytest.approx(1.0)
    assert cost.largest_tensor_ratio(largest, 2) == pytest.approx(64 * 64 / (64 * 16))


def test_flops_are_counted_exactly():
    assert cost.attention_flops(32, 8) == 4 * 32 * 32 * 8
    assert cost.attention_flops(64, 8) / cost.attention_flops(32, 8) == 4


def test_timings_return_one_positive_time_per_length_and_computation(layers):
    seconds = cost.timings(layers, [16, 32], rounds=1, min_run_time=0.001)
    assert set(seconds) == {"attention written out", "fused attention (PyTorch)", "GRU"}
    assert all(len(values) == 2 and min(values) > 0 for values in seconds.values())
    fig = cost.plot_cost([16, 32], seconds, cost.allocations(layers, [16, 32]))
    assert len(fig.axes) == 2 and all(ax.has_data() for ax in fig.axes)


def test_slope_and_crossover():
    assert cost.slope([1, 10, 100], [3, 300, 30000]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        cost.slope([1], [1])
    seconds = {"attention written out": [1, 2, 8], "GRU": [3, 3, 3]}
    assert cost.crossover([10, 20, 40], seconds) == 20
    assert cost.crossover([10], {"attention written out": [5], "GRU": [1]}) is None
    seconds["fused"] = [1, 1, 2]
    assert cost.crossover([10, 20, 40], seconds, "fused") == 40
    assert "up to 20 tokens, slower beyond" in cost.crossover_sentence([10, 20, 40], seconds, "attention written out")
    assert "at every length timed, up to 40" in cost.crossover_sentence([10, 20, 40], seconds, "fused")
    assert "slower than the GRU layer at every length" in cost.crossover_sentence(
        [10], {"x": [5], "GRU": [1]}, "x")


def test_agreement_and_causality_checks_are_tiny_and_exact():
    agreement = cost.agreement_with_torch(width=16, heads=2, length=8)
    assert max(agreement.values()) < 1e-5
    assert cost.future_leak(length=6, width=4) == 0.0


def test_memory_explorer_numbers_and_note():
    fig, numbers = cost.memory_explorer(log2_length=10, layers=2, heads=3, bytes_per_value=2)
    assert numbers["all layers and heads, written out (GiB)"] == pytest.approx(1024**2 * 2 * 3 * 2 / 2**30)
    assert numbers["one T x T matrix (MiB)"] == pytest.approx(2.0)
    assert "note" not in numbers and fig.axes[0].has_data()
    _, huge = cost.memory_explorer(log2_length=17, layers=96, heads=96, bytes_per_value=2)
    assert "more than an 80 GB accelerator" in huge["note"]
    assert all(math.isfinite(v) for k, v in huge.items() if k != "note")


@pytest.mark.parametrize("kwargs, name", [({"log2_length": 5}, "log2_length"), ({"layers": 0}, "layers"),
                                          ({"heads": 129}, "heads"), ({"bytes_per_value": 9}, "bytes_per_value")])
def test_memory_explorer_checks_its_controls(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cost.memory_explorer(**kwargs)


def test_causal_mask_checker_accepts_a_right_answer(capsys):
    assert cost.check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer, expected", [
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "Not quite"),       # the future instead of the past
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "Not quite"),     # diagonal missing
    (lambda T: torch.ones(T, T).tril(), "must be boolean"),                   # float mask
    (lambda T: torch.ones(T, T + 1, dtype=torch.bool), "shape"),
    (lambda T: [[True]], "shape"),
    (lambda T: 1 / 0, "raised ZeroDivisionError"),
])
def test_causal_mask_checker_explains_wrong_answers_without_raising(answer, expected, capsys):
    assert cost.check_causal_mask(answer) is False
    assert expected in capsys.readouterr().out


def test_causal_mask_checker_reports_an_untouched_stub(capsys):
    def stub(T):
        raise NotImplementedError

    assert cost.check_causal_mask(stub) is False
    assert "Not attempted" in capsys.readouterr().out


def test_bytes_label():
    assert cost.bytes_label(512) == "512 bytes"
    assert cost.bytes_label(4 * 2**20) == "4 MiB"
    assert cost.bytes_label(1.5 * 2**30) == "1.5 GiB"
