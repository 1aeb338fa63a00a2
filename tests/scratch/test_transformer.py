"""The from-scratch transformer block computes what PyTorch's pre-norm encoder layer computes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.scratch.transformer import TransformerBlock


def torch_twin(block: TransformerBlock) -> nn.TransformerEncoderLayer:
    d_model, d_hidden = block.mlp[0].in_features, block.mlp[0].out_features
    twin = nn.TransformerEncoderLayer(d_model, block.attention.n_heads, d_hidden, dropout=0.0, activation="gelu",
                                      batch_first=True, norm_first=True, dtype=torch.float64)
    with torch.no_grad():
        twin.self_attn.in_proj_weight.copy_(block.attention.qkv.weight)
        twin.self_attn.in_proj_bias.copy_(block.attention.qkv.bias)
        twin.self_attn.out_proj.weight.copy_(block.attention.out.weight)
        twin.self_attn.out_proj.bias.copy_(block.attention.out.bias)
        for ours, theirs in ((block.mlp[0], twin.linear1), (block.mlp[2], twin.linear2),
                             (block.norm1, twin.norm1), (block.norm2, twin.norm2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return twin


def randomised(block: TransformerBlock) -> TransformerBlock:
    """Non-trivial LayerNorm gains and biases, so a swapped or missing norm shows."""
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return block


@pytest.mark.parametrize("n_heads, d_hidden", [(1, None), (2, 24), (4, 7)])
def test_block_matches_torch_encoder_layer(n_heads, d_hidden):
    torch.manual_seed(n_heads)
    block = randomised(TransformerBlock(8, n_heads, d_hidden).double())
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x), torch_twin(block)(x), rtol=0, atol=1e-12)


def test_causal_block_matches_torch_with_a_causal_mask():
    torch.manual_seed(0)
    block = randomised(TransformerBlock(8, 2).double())
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)
    torch.testing.assert_close(block(x, is_causal=True), torch_twin(block)(x, src_mask=mask, is_causal=True),
                               rtol=0, atol=1e-12)
    changed = x.clone()
    changed[:, 3:] += 1.0
    assert torch.equal(block(x, is_causal=True)[:, :3], block(changed, is_causal=True)[:, :3])


def test_hidden_width_defaults_to_four_times_the_model_width():
    block = TransformerBlock(8, 2)
    assert block.mlp[0].out_features == 32 and block.mlp[2].in_features == 32
    assert isinstance(block.mlp[1], nn.GELU)


@pytest.mark.parametrize("d_hidden", [0, 262_145])
def test_hidden_width_is_checked(d_hidden):
    with pytest.raises(ValueError, match="^d_hidden must be an integer"):
        TransformerBlock(8, 2, d_hidden)


def test_hidden_width_accepts_one():
    assert TransformerBlock(4, 1, 1)(torch.randn(1, 2, 4)).shape == (1, 2, 4)
