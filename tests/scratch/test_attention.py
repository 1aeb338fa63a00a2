"""Attention written from scratch agrees with PyTorch's own, mask by mask and head by head."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional

from helpers.scratch import attention


def tensors(*shapes, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=dtype) for shape in shapes]


def test_matches_torch_without_a_mask():
    q, k, v = tensors((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4))
    ours = attention.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(ours, functional.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-12)
    assert ours.shape == (2, 3, 5, 4)


def test_scores_are_scaled_by_the_square_root_of_the_key_size():
    q, k, v = tensors((4, 16), (6, 16), (6, 3), seed=1)
    q = 3 * q  # large scores: the scale matters
    expected = torch.softmax(q @ k.T / 4.0, dim=-1) @ v
    torch.testing.assert_close(attention.scaled_dot_product_attention(q, k, v), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_queries, n_keys", [(6, 6), (4, 7), (7, 4)])
def test_matches_torch_with_is_causal_also_when_query_and_key_lengths_differ(n_queries, n_keys):
    q, k, v = tensors((2, n_queries, 8), (2, n_keys, 8), (2, n_keys, 5), seed=2)
    ours = attention.scaled_dot_product_attention(q, k, v, is_causal=True)
    theirs = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_causal_mask_is_the_lower_triangle_including_the_diagonal():
    mask = attention.causal_mask(3, 4)
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert mask.dtype == torch.bool and torch.equal(mask, expected)
    assert attention.causal_mask(1, 1).tolist() == [[True]]


def test_causal_outputs_ignore_the_future_exactly():
    q, k, v = tensors((1, 6, 4), (1, 6, 4), (1, 6, 4), seed=3)
    before = attention.scaled_dot_product_attention(q, k, v, is_causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:] += 10.0
    v2[:, 4:] -= 10.0
    after = attention.scaled_dot_product_attention(q, k2, v2, is_causal=True)
    assert torch.equal(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_boolean_mask_matches_torch_and_true_means_may_attend():
    q, k, v = tensors((2, 5, 8), (2, 6, 8), (2, 6, 3), seed=4)
    mask = torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) > 0.4
    mask[:, 0] = True  # every query may attend somewhere
    ours = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, functional.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               rtol=0, atol=1e-12)
    weights = attention.attention_weights(q, k, attn_mask=mask)
    assert torch.all(weights[:, ~mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_float_mask_is_added_to_the_scores():
    q, k, v = tensors((3, 5, 8), (3, 5, 8), (3, 5, 2), seed=5)
    bias = torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = attention.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(ours, functional.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                               rtol=0, atol=1e-12)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8) + bias, dim=-1)
    torch.testing.assert_close(attention.attention_weights(q, k, attn_mask=bias), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("blocked", [torch.zeros(4, 5, dtype=torch.bool), torch.full((4, 5), float("-inf"))])
def test_a_query_that_may_attend_nowhere_reads_zeros_as_in_torch(blocked):
    q, k, v = tensors((3, 4, 8), (3, 5, 8), (3, 5, 3), seed=6)  # a batch: the blocked rows are found per query
    q, k, v = q.float(), k.float(), v.float()
    mask = blocked.clone()
    mask[0] = True if mask.dtype == torch.bool else 0.0  # query 0 may attend everywhere, the others nowhere
    ours = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    theirs = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert torch.all(ours[:, 1:] == 0) and torch.all(ours[:, 0] != 0)


def test_nan_inputs_are_not_hidden():
    q, k, v = tensors((3, 4), (3, 4), (3, 4), seed=7)
    q[1, 0] = float("nan")
    out = attention.scaled_dot_product_attention(q, k, v)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[0]).any()


def test_gradients_match_torch():
    q, k, v = (t.requires_grad_() for t in tensors((2, 5, 4), (2, 5, 4), (2, 5, 3), seed=8))
    attention.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    functional.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    for mine, theirs in zip(ours, (q.grad, k.grad, v.grad)):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shapes, message", [
    (((4,), (4, 8), (4, 8)), "query, key and value"),
    (((4, 8), (4,), (4, 8)), "query, key and value"),
    (((4, 8), (4, 8), (4,)), "query, key and value"),
    (((2, 4, 8), (2, 4, 7), (2, 4, 8)), "same feature size, got 8 and 7$"),
    (((4, 8), (5, 8), (4, 8)), "same number of positions, got 5 and 4$"),
])
def test_bad_shapes_are_refused_with_the_reason(shapes, message):
    q, k, v = tensors(*shapes)
    with pytest.raises(ValueError, match=message):
        attention.scaled_dot_product_attention(q, k, v)


def test_a_mask_and_is_causal_together_are_refused():
    q, k, v = tensors((4, 8), (4, 8), (4, 8))
    with pytest.raises(ValueError, match="^attn_mask must be None when is_causal"):
        attention.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(4, 4, dtype=torch.bool), is_causal=True)
    with pytest.raises(ValueError, match="attn_mask must be None"):
        attention.attention_weights(q, k, attn_mask=torch.zeros(4, 4), is_causal=True)


@pytest.mark.parametrize("args, name", [((0, 3), "n_queries"), ((3, 0), "n_keys"), ((1_000_001, 1), "n_queries"),
                                        ((1, 1_000_001), "n_keys")])
def test_causal_mask_sizes_are_checked(args, name):
    with pytest.raises(ValueError, match=f"^{name} must be an integer"):
        attention.causal_mask(*args)


def test_causal_mask_accepts_its_largest_size():
    assert attention.causal_mask(1_000_000, 1).all()
    assert attention.causal_mask(1, 1_000_000).sum() == 1


def copy_into_torch(ours: attention.MultiHeadSelfAttention, bias: bool = True) -> nn.MultiheadAttention:
    theirs = nn.MultiheadAttention(ours.d_model, ours.n_heads, bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.out_proj.weight.copy_(ours.out.weight)
        if bias:
            theirs.in_proj_bias.copy_(ours.qkv.bias)
            theirs.out_proj.bias.copy_(ours.out.bias)
    return theirs


@pytest.mark.parametrize("n_heads", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_matches_torch_multihead_attention(n_heads, bias):
    torch.manual_seed(n_heads)
    ours = attention.MultiHeadSelfAttention(16, n_heads, bias=bias).double()
    theirs = copy_into_torch(ours, bias)
    x = tensors((3, 7, 16), seed=n_heads)[0]
    expected, _ = theirs(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-12)
    assert (ours.qkv.bias is None) == (not bias)


def test_multi_head_causal_matches_torch_with_its_inverted_mask_convention():
    torch.manual_seed(0)
    ours = attention.MultiHeadSelfAttention(12, 3).double()
    theirs = copy_into_torch(ours)
    x = tensors((2, 6, 12), seed=9)[0]
    forbidden = ~attention.causal_mask(6, 6)  # nn.MultiheadAttention's True means "may NOT attend"
    expected, _ = theirs(x, x, x, attn_mask=forbidden, need_weights=False)
    torch.testing.assert_close(ours(x, is_causal=True), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours(x, attn_mask=~forbidden), expected, rtol=0, atol=1e-12)


def test_multi_head_returns_per_head_weights_that_match_torch():
    torch.manual_seed(1)
    ours = attention.MultiHeadSelfAttention(8, 2).double()
    theirs = copy_into_torch(ours)
    x = tensors((2, 5, 8), seed=10)[0]
    out, weights = ours(x, return_weights=True)
    expected_out, expected_weights = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    assert weights.shape == (2, 2, 5, 5)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-12)


def test_heads_see_separate_subspaces():
    torch.manual_seed(2)
    layer = attention.MultiHeadSelfAttention(8, 2).double()
    x = tensors((1, 4, 8), seed=11)[0]
    _, weights = layer(x, return_weights=True)
    assert not torch.allclose(weights[:, 0], weights[:, 1])


@pytest.mark.parametrize("d_model, n_heads, message", [
    (0, 1, "d_model"), (65_537, 1, "d_model"), (8, 0, "n_heads"), (8, 9, "n_heads"),
    (8, 3, "d_model must be divisible"),
])
def test_multi_head_arguments_are_checked(d_model, n_heads, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        attention.MultiHeadSelfAttention(d_model, n_heads)


def test_multi_head_accepts_one_head_per_feature():
    layer = attention.MultiHeadSelfAttention(4, 4)
    assert layer(torch.randn(1, 3, 4)).shape == (1, 3, 4)
    assert attention.MultiHeadSelfAttention(1, 1)(torch.randn(2, 3, 1)).shape == (2, 3, 1)


@pytest.mark.parametrize("shape", [(3, 8), (1, 3, 7), (1, 1, 3, 8)])
def test_multi_head_refuses_inputs_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, positions, 8\)"):
        attention.MultiHeadSelfAttention(8, 2)(torch.randn(*shape))
