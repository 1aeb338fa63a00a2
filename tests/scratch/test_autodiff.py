"""The scalar engine against torch.autograd (float64) and hand-computed derivatives."""
from __future__ import annotations

import math

import pytest
import torch

from helpers.scratch.autodiff import Value, as_value, topological_order


def torch_grads(fn, *xs):
    """Value and gradients of ``fn`` at ``xs`` by torch.autograd in float64."""
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.item(), [leaf.grad.item() for leaf in leaves]


def engine_grads(fn, *xs):
    leaves = [Value(x) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.data, [leaf.grad for leaf in leaves]


CASES = {
    "add": (lambda a, b: a + b, (1.5, -2.0)),
    "mul": (lambda a, b: a * b, (1.5, -2.0)),
    "sub": (lambda a, b: a - b, (1.5, -2.0)),
    "div": (lambda a, b: a / b, (1.5, -2.0)),
    "pow": (lambda a, b: a ** 3 + b ** 2, (1.5, -2.0)),
    "fractional pow": (lambda a, b: a ** 0.5 * b, (2.25, -2.0)),
    "negative pow": (lambda a, b: a ** -2 + b, (1.5, -2.0)),
    "neg": (lambda a, b: -a * b, (1.5, -2.0)),
    "radd rmul rsub rtruediv": (lambda a, b: 3.0 + 2.0 * a - (1.0 - b) + 4.0 / a, (1.5, -2.0)),
    "exp": (lambda a, b: (a * b).exp(), (0.7, -1.2)),
    "log": (lambda a, b: (a * a + b * b).log(), (0.7, -1.2)),
    "tanh": (lambda a, b: (a * b).tanh(), (0.7, -1.2)),
    "relu positive": (lambda a, b: (a - b).relu() * a, (0.7, -1.2)),
    "relu negative": (lambda a, b: (b - a).relu() + a, (0.7, -1.2)),
    "sigmoid positive": (lambda a, b: (a * 2.0).sigmoid() * b, (0.7, -1.2)),
    "sigmoid negative": (lambda a, b: (b * 3.0).sigmoid() * a, (0.7, -1.2)),
    "reuse": (lambda a, b: (a * b + a).tanh() * a + b * b * b, (0.7, -1.2)),
}


@pytest.mark.parametrize("name", CASES)
def test_every_operation_matches_torch_in_value_and_gradient(name):
    fn, xs = CASES[name]
    value, grads = engine_grads(fn, *xs)
    torch_value, torch_grad = torch_grads(fn, *xs)
    assert value == pytest.approx(torch_value, rel=1e-12, abs=1e-15)
    assert grads == pytest.approx(torch_grad, rel=1e-10, abs=1e-15)


def test_sigmoid_is_stable_far_in_both_tails_and_exact_at_zero():
    assert Value(800.0).sigmoid().data == 1.0
    assert Value(-800.0).sigmoid().data == 0.0
    zero = Value(0.0)
    out = zero.sigmoid()
    out.backward()
    assert out.data == 0.5 and zero.grad == 0.25
    assert Value(-2.0).sigmoid().data == pytest.approx(1 / (1 + math.exp(2.0)), rel=1e-15)
    assert Value(0.5).sigmoid().data == pytest.approx(1 / (1 + math.exp(-0.5)), rel=1e-15)
    assert Value(-0.5).sigmoid().data == pytest.approx(1 / (1 + math.exp(0.5)), rel=1e-15)
    assert Value(2.0).sigmoid().data == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-15)


def test_relu_has_slope_zero_at_zero_and_one_above():
    for x, slope in ((0.0, 0.0), (1e-12, 1.0), (-1e-12, 0.0)):
        v = Value(x)
        v.relu().backward()
        assert v.grad == slope


def test_local_gradients_are_stored_on_each_node():
    a, b = Value(2.0), Value(-3.0)
    assert (a * b).local_grads == (-3.0, 2.0)
    assert (a + b).local_grads == (1.0, 1.0)
    assert (a ** 3).local_grads == (12.0,)
    assert a.exp().local_grads == (math.exp(2.0),)
    assert a.log().local_grads == (0.5,)
    assert Value(0.5).tanh().local_grads == (1 - math.tanh(0.5) ** 2,)
    assert a.local_grads == ()


def test_nodes_record_their_inputs_and_operation():
    a, b = Value(2.0, label="a"), Value(-3.0)
    assert (a + b).op == "+" and (a * b).op == "*" and (a ** 2).op == "**2" and (a ** 0.5).op == "**0.5"
    unary = [a.exp().op, a.log().op, a.tanh().op, a.relu().op, a.sigmoid().op]
    assert unary == ["exp", "log", "tanh", "relu", "sigmoid"]
    product = a * b
    assert product.children == (a, b) and product.label == "" and a.label == "a" and a.op == "" and a.children == ()


def test_a_value_used_twice_accumulates_gradient_along_both_paths():
    x = Value(3.0)
    y = x * x + x           # dy/dx = 2x + 1 = 7
    visited = y.backward()
    assert x.grad == 7.0
    assert visited == len(topological_order(y)) == 3


def test_backward_restarts_from_zero_and_seeds_the_output_with_one():
    x = Value(3.0)
    y = x * x
    y.backward()
    y.backward()            # a second call must not double the gradient
    assert x.grad == 6.0 and y.grad == 1.0


def test_backward_zeroes_stale_gradients_of_inner_nodes():
    x = Value(2.0)
    hidden = x * 3.0
    out = hidden * hidden
    hidden.grad = 100.0
    out.backward()
    assert hidden.grad == 12.0 and x.grad == 36.0


def test_topological_order_lists_inputs_before_every_use_and_each_node_once():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    assert len(order) == len({id(n) for n in order}) == 5
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for child in node.children:
            assert position[id(child)] < position[id(node)]
    assert order[-1] is e


def test_topological_order_handles_deep_graphs_without_recursion():
    x = Value(0.5)
    out = x
    for _ in range(5000):
        out = out + x
    assert out.backward() == 5001
    assert x.grad == 5001.0


def test_as_value_wraps_numbers_and_passes_values_through():
    v = Value(1.0)
    assert as_value(v) is v
    wrapped = as_value(2)
    assert isinstance(wrapped, Value) and wrapped.data == 2.0 and isinstance(wrapped.data, float)


def test_repr_shows_label_data_and_gradient():
    v = Value(1.23456, label="w")
    v.grad = 0.5
    assert repr(v) == "Value(w=1.235, grad=0.5)"
    assert repr(Value(2.0)) == "Value(2, grad=0)"


def test_bad_inputs_are_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match=r"data must be a real number, got '1'"):
        Value("1")
    with pytest.raises(ValueError, match="data must be a real number, got True"):
        Value(True)
    with pytest.raises(ValueError, match=r"log needs a positive input, got 0.0"):
        Value(0.0).log()
    assert Value(1e-300).log().data == pytest.approx(math.log(1e-300))
    with pytest.raises(ValueError, match=r"exponent must be an int or float constant"):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ValueError, match=r"exponent must be an int or float constant, got True"):
        Value(2.0) ** True
    with pytest.raises(ValueError, match=r"a non-integer power needs a positive base, got base -1.0"):
        Value(-1.0) ** 0.5
    with pytest.raises(ValueError, match=r"a non-integer power needs a positive base, got base 0.0"):
        Value(0.0) ** 1.5
    with pytest.raises(ValueError, match=r"0 \*\* 0 has no finite derivative"):
        Value(0.0) ** 0
    with pytest.raises(ValueError, match=r"0 \*\* -1 has no finite derivative"):
        Value(0.0) ** -1
    with pytest.raises(ValueError, match="^division by a Value whose data is 0$"):
        Value(1.0) / 0
    with pytest.raises(ValueError, match=r"exp overflows float64 for data > 700, got 700.5"):
        Value(700.5).exp()


def test_negation_is_multiplication_by_minus_one():
    a = Value(2.0)
    negated = -a
    assert negated.op == "*" and negated.local_grads == (-1.0, 2.0) and negated.children[0] is a
    assert negated.children[1].data == -1.0 and negated.children[1].children == ()     # a constant, not a power


def test_edge_cases_that_are_allowed():
    assert (Value(0.25) ** 0.5).data == 0.5           # fractional powers of bases below 1
    assert (Value(-2.0) ** 2).data == 4.0            # integer powers of negative bases
    zero = Value(0.0)
    (zero ** 1).backward()
    assert zero.grad == 1.0                          # 0 ** 1 is fine
    zero_squared = Value(0.0)
    (zero_squared ** 2).backward()
    assert zero_squared.grad == 0.0
    assert Value(700.0).exp().data == math.exp(700.0)
