"""Tests for helpers.autodiff: the scalar engine against torch, manual backward, finite differences, checkers."""
from __future__ import annotations

import math

import pytest
import torch

from helpers import autodiff as ad
from helpers.autodiff import Value


def test_value_ops_match_torch_on_a_fixed_expression():
    a, b = Value(1.3), Value(-0.7)
    out = ((a * b + a ** 2) / (b.exp() + 1.0)).tanh() + (a - b).relu() + (a * a).log() + b.sigmoid()
    out.backward()
    ta = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    tout = (((ta * tb + ta ** 2) / (tb.exp() + 1.0)).tanh() + (ta - tb).relu() + (ta * ta).log()
            + tb.sigmoid())
    tout.backward()
    assert math.isclose(out.data, tout.item(), rel_tol=1e-12)
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=1e-9)
    assert math.isclose(b.grad, tb.grad.item(), rel_tol=1e-9)


def test_reused_value_accumulates_gradient_and_backward_visits_each_node_once():
    x = Value(3.0)
    y = x * x + x          # dy/dx = 2x + 1 = 7
    visited = y.backward()
    assert x.grad == 7.0
    assert visited == len(ad.topological_order(y)) == 3
    y.backward()           # a second call restarts from zero instead of doubling
    assert x.grad == 7.0


def test_random_expressions_match_torch_to_1e_9():
    result = ad.compare_with_torch(n_expressions=10, seed=3)
    assert result["max_rel_diff"] < 1e-9
    assert result["n_gradients"] == 40


def test_value_rejects_bad_input():
    with pytest.raises(ValueError, match="data"):
        Value("1")
    with pytest.raises(ValueError, match="log"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="exponent"):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ValueError, match="division"):
        Value(1.0) / 0


def test_draw_graph_returns_a_titled_figure_and_refuses_huge_graphs():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    out = a * b + a
    out.backward()
    fig = ad.draw_graph(out)
    assert fig.axes[0].get_title()
    big = Value(0.0)
    for _ in range(70):
        big = big + 1.0
    with pytest.raises(ValueError, match="60"):
        ad.draw_graph(big)


def test_manual_mlp_backward_matches_autograd():
    params = ad.init_mlp_params(5, 7, 3, seed=1)
    x = torch.randn(9, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (9,))
    rows = ad.compare_gradients(ad.manual_mlp_gradients(params, x, y), ad.autograd_gradients(params, x, y))
    assert [r["parameter"] for r in rows] == ["W1", "b1", "W2", "b2"]
    assert all(r["close"] and r["max_abs_diff"] < 1e-12 for r in rows)
    with pytest.raises(ValueError, match="x must have shape"):
        ad.manual_mlp_gradients(params, x[0], y)


def test_finite_differences_precision_and_cost():
    err64 = ad.finite_difference_errors([1e-5], "float64", n_params=12)[0]
    err32 = ad.finite_difference_errors([1e-5], "float32", n_params=12)[0]
    assert err64 < 1e-7 < 1e-4 < err32
    cost = ad.finite_difference_cost([8, 32], repeats=1)
    assert list(cost["fd_evals"]) == [16, 64] and list(cost["ad_evals"]) == [1, 1]
    with pytest.raises(ValueError, match="dtype"):
        ad.finite_difference_errors([1e-3], "float16")
    with pytest.raises(ValueError, match="h must"):
        ad.central_difference(lambda w: w.sum(), torch.zeros(3), 0.0)


def test_loglog_slope():
    assert ad.loglog_slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ad.loglog_slope([1], [1])


def test_gradcheck_accepts_correct_and_catches_buggy_sigmoid():
    assert ad.run_gradcheck(ad.SigmoidFn.apply)
    assert not ad.run_gradcheck(ad.BuggySigmoidFn.apply)


def test_forward_vs_reverse_pass_counts():
    result = ad.forward_vs_reverse(8, repeats=1)
    assert result["reverse_passes"] == 1 and result["forward_passes"] == 8
    assert result["max_abs_diff"] < 1e-12
    with pytest.raises(ValueError, match="n must"):
        ad.forward_vs_reverse(0)


def _good_sin(v):
    out = Value(math.sin(v.data), (v,), "sin")

    def backward():
        v.grad += math.cos(v.data) * out.grad
    out._backward = backward
    return out


def _bad_sin(v):
    out = Value(math.sin(v.data), (v,), "sin")

    def backward():
        v.grad = math.cos(v.data) * out.grad   # overwrites instead of accumulating
    out._backward = backward
    return out


def _stub(*args):
    raise NotImplementedError


def test_sin_checker(capsys):
    assert ad.check_value_sin(_stub) is False
    assert "Not attempted" in capsys.readouterr().out
    assert ad.check_value_sin(_good_sin) is True
    with pytest.raises(AssertionError, match="Hint"):
        ad.check_value_sin(_bad_sin)


def test_linear_backward_checker(capsys):
    assert ad.check_linear_backward(_stub) is False
    assert ad.check_linear_backward(lambda x, W, b, g: None) is False
    assert ad.check_linear_backward(lambda x, W, b, g: (g @ W, g.T @ x, g.sum(0))) is True
    with pytest.raises(AssertionError, match="Hint"):
        ad.check_linear_backward(lambda x, W, b, g: (g @ W, g.T @ x, g.mean(0)))
    with pytest.raises(AssertionError, match="shape"):
        ad.check_linear_backward(lambda x, W, b, g: (g @ W, x.T @ g, g.sum(0)))
