"""Notebook 01, sections 2-3: what a gradient costs (finite differences, forward and reverse mode, checkpointing)."""
from __future__ import annotations

import warnings

import pytest
import torch

from helpers.experiments import nb01_backpropagation_cost as lab


def test_finite_difference_cost_counts_evaluations():
    cost = lab.finite_difference_cost([8, 32], rounds=1)
    assert list(cost["fd_evals"]) == [16, 64] and list(cost["ad_evals"]) == [1, 1]
    assert (cost["time_ratio"] > 0).all()
    assert lab.cost_figure(cost).axes
    with pytest.raises(ValueError, match="param_counts"):
        lab.finite_difference_cost([2])


def test_loglog_slope():
    assert lab.loglog_slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
    assert lab.loglog_slope([1, 10, 100], [5, 5, 5]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        lab.loglog_slope([1], [1])


def test_forward_vs_reverse_counts_passes_without_deprecation_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rows = lab.forward_vs_reverse([4, 8], rounds=1)
    assert [(r["n"], r["reverse passes"]) for r in rows] == [(4, 1), (8, 1)]
    assert rows[-1]["forward passes"] == 8
    assert all(r["max |difference|"] < 1e-12 and r["forward ms"] > 0 and r["reverse ms"] > 0 for r in rows)
    assert lab.modes_figure(rows).axes
    with pytest.raises(ValueError, match="sizes"):
        lab.forward_vs_reverse([0])


def test_checkpointing_keeps_only_segment_inputs():
    blocks = lab.deep_tanh_stack(8, 16)
    x = torch.randn(4, 16, requires_grad=True)
    per_activation = 4 * 16 * 4
    assert lab.bytes_kept_for_backward(blocks, x) == 9 * per_activation           # 8 layer inputs + last tanh output
    assert lab.bytes_kept_for_backward(blocks, x, segments=2) == 2 * per_activation
    torch.testing.assert_close(lab.run_blocks(blocks, x, 2), lab.run_blocks(blocks, x))
    assert lab.segment_bounds(8, 3) == [(0, 3), (3, 5), (5, 8)]
    cost = lab.backward_cost(depth=4, width=16, batch=4, segments=2, rounds=1)
    assert cost["bytes kept"] == 5 * cost["bytes per activation"]
    assert cost["bytes kept checkpointed"] == 2 * cost["bytes per activation"]
    assert cost["bytes at peak checkpointed"] == 4 * cost["bytes per activation"]   # 2 inputs + 2 recomputed
    assert cost["checkpointed s"] > 0
    with pytest.raises(ValueError, match="segments"):
        lab.run_blocks(blocks, x, 9)
