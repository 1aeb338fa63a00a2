"""Notebook 01, sections 1-2: the engine checked against torch, autograd behaviours, finite differences, checkers."""
from __future__ import annotations

import math

import pytest
import torch

from helpers.experiments import nb01_backpropagation_autodiff as lab
from helpers.scratch.autodiff import Value


def test_random_programs_are_reproducible_and_use_earlier_nodes_only():
    steps = lab.random_program(3, 20, seed=5)
    assert steps == lab.random_program(3, 20, seed=5) and len(steps) == 20
    assert all(op in lab.OPERATIONS and i < 3 + k and j < 3 + k for k, (op, i, j) in enumerate(steps))
    with pytest.raises(ValueError, match="n_ops"):
        lab.random_program(3, 0, seed=0)


def test_engine_matches_torch_autograd_on_random_expressions():
    result = lab.engine_vs_torch_autograd(n_expressions=10, seed=3)
    assert result["n_gradients"] == 40 and result["max_rel_diff"] < 1e-9


def test_engine_check_fails_when_a_local_derivative_is_wrong(monkeypatch):
    def wrong_tanh(self):
        t = math.tanh(self.data)
        return self._node(t, (self,), "tanh", (1.0 - t,))          # should be 1 - t^2

    monkeypatch.setattr(Value, "tanh", wrong_tanh)
    assert lab.engine_vs_torch_autograd(n_expressions=10, seed=3)["max_abs_diff"] > 1e-3


def test_draw_graph_labels_every_edge_and_refuses_huge_graphs():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    out = a * b + a
    out.backward()
    fig = lab.draw_graph(out)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "-3" in texts and "2" in texts and texts.count("1") == 2     # d(ab)/da, d(ab)/db, and the two sums
    big = Value(0.0)
    for _ in range(45):
        big = big + 1.0
    with pytest.raises(ValueError, match="at most 40 nodes"):
        lab.draw_graph(big)


def test_compare_gradients_rows_and_errors():
    ref = {"w": torch.ones(2, dtype=torch.float64)}
    rows = lab.compare_gradients({"w": torch.ones(2, dtype=torch.float64) + 1e-13}, ref)
    assert rows[0]["close"] and not rows[0]["bit-identical"] and rows[0]["max |difference|"] > 0
    with pytest.raises(ValueError, match="missing"):
        lab.compare_gradients({}, ref)
    with pytest.raises(ValueError, match="shape"):
        lab.compare_gradients({"w": torch.ones(3)}, ref)


def test_finite_differences_precision_rounding_and_cost():
    err64, err32 = (lab.finite_difference_errors([1e-5], dtype, n_params=12)[0] for dtype in ("float64", "float32"))
    assert err64 < 1e-7 < 1e-4 < err32
    assert lab.finite_difference_errors([1e-11], "float32", n_params=12)[0] == pytest.approx(1.0)
    assert lab.share_of_steps_lost(1e-11, "float32", n_params=12) == 1.0
    assert lab.share_of_steps_lost(1e-5, "float64", n_params=12) == 0.0
    with pytest.raises(ValueError, match="dtype"):
        lab.finite_difference_errors([1e-3], "float16")
    with pytest.raises(ValueError, match="hs must hold"):
        lab.finite_difference_errors([])


def test_autograd_behaviours_are_measured_not_assumed():
    behaviours = lab.autograd_behaviours(seed=1)
    assert behaviours["second backward / first"] == pytest.approx(2.0)
    assert behaviours["4 micro-batches vs full batch (max |diff|)"] < 1e-12
    assert "modified by an inplace operation" in behaviours["in-place change of a saved tensor"]
    assert behaviours["d(b * b.detach())/db at b = 3"] == 3.0 and behaviours["ReLU slope at exactly 0"] == 0.0
    assert 0.0 <= behaviours["share of pre-activations exactly 0"] < 1e-3


def _good_sin(v):
    out = Value(math.sin(v.data), (v,), "sin")

    def backward():
        v.grad += math.cos(v.data) * out.grad
    out._backward = backward
    return out


def _overwriting_sin(v):
    out = Value(math.sin(v.data), (v,), "sin")

    def backward():
        v.grad = math.cos(v.data) * out.grad
    out._backward = backward
    return out


def _stub(*_):
    raise NotImplementedError


def test_sin_checker_never_raises(capsys):
    assert lab.check_value_sin(_stub) is False
    assert "Not attempted" in capsys.readouterr().out
    assert lab.check_value_sin(lambda v: 1.0) is False
    assert lab.check_value_sin(lambda v: Value(math.cos(v.data))) is False
    assert lab.check_value_sin(_overwriting_sin) is False
    assert "+=" in capsys.readouterr().out
    assert lab.check_value_sin(_good_sin) is True


def test_linear_backward_checker_never_raises(capsys):
    assert lab.check_linear_backward(_stub) is False
    assert lab.check_linear_backward(lambda x, W, b, g: None) is False
    assert lab.check_linear_backward(lambda x, W, b, g: (g @ W,)) is False
    assert lab.check_linear_backward(lambda x, W, b, g: (g @ W, x.T @ g, g.sum(0))) is False
    assert "shape" in capsys.readouterr().out
    assert lab.check_linear_backward(lambda x, W, b, g: (g @ W, g.T @ x, g.mean(0))) is False
    assert lab.check_linear_backward(lambda x, W, b, g: (g @ W, g.T @ x, g.sum(0))) is True


def test_finite_difference_explorer_notes_rounding():
    fig, numbers = lab.finite_difference_explorer(-5.0, "float32")
    assert numbers["error at h"] > 1e-4 and "note" not in numbers
    fig, numbers = lab.finite_difference_explorer(-11.0, "float32")
    assert numbers["error at h"] == pytest.approx(1.0) and "rounds back" in numbers["note"]
    with pytest.raises(ValueError, match="log10_h"):
        lab.finite_difference_explorer(0.0)
    with pytest.raises(ValueError, match="precision"):
        lab.finite_difference_explorer(-5.0, "float16")
