"""helpers.scratch.decoder against a reference forward built on torch's scaled_dot_product_attention."""
import math

import pytest
import torch
from torch.nn import functional

from helpers.scratch import decoder


def reference_forward(model, tokens):
    """The same network, attention by torch.nn.functional.scaled_dot_product_attention (causal, grouped heads)."""
    batch, length = tokens.shape
    x = model.token_embedding(tokens) + model.position_embedding(torch.arange(length))
    for block in model.blocks:
        attention, h = block.attention, block.norm1(x)
        q = attention.query(h).view(batch, length, model.n_heads, model.head_dim).transpose(1, 2)
        k, v = attention.key_value(h).view(batch, length, 2, model.n_kv_heads, model.head_dim).unbind(2)
        y = functional.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                                    enable_gqa=model.n_kv_heads != model.n_heads)
        x = x + attention.out(y.transpose(1, 2).reshape(batch, length, model.d_model))
        x = x + block.mlp(block.norm2(x))
    return model.head(model.norm(x))


SHAPES = [dict(vocab=17, d_model=16, n_heads=4, n_layers=2, max_len=40),
          dict(vocab=11, d_model=24, n_heads=6, n_layers=1, max_len=40, n_kv_heads=2),
          dict(vocab=13, d_model=16, n_heads=4, n_layers=3, max_len=40, n_kv_heads=1),
          dict(vocab=9, d_model=8, n_heads=1, n_layers=1, max_len=40)]


@pytest.mark.parametrize("seed,sizes", list(enumerate(SHAPES)))
def test_forward_matches_the_reference(seed, sizes):
    model = decoder.tiny_decoder(seed=seed, **sizes)
    tokens = torch.randint(0, model.vocab, (2, 9), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits, cache = model(tokens)
        assert torch.allclose(logits, reference_forward(model, tokens), atol=1e-5)
    assert len(cache) == model.n_layers
    assert all(k.shape == v.shape == (2, model.n_kv_heads, 9, model.head_dim) for k, v in cache)


@pytest.mark.parametrize("seed,sizes", list(enumerate(SHAPES)))
def test_cached_chunks_match_the_reference_on_the_whole_sequence(seed, sizes):
    model = decoder.tiny_decoder(seed=seed, **sizes)
    tokens = torch.randint(0, model.vocab, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = reference_forward(model, tokens)
        _, cache = model(tokens[:, :5])
        chunk, cache = model(tokens[:, 5:9], cache)        # several new tokens against a cache: the mask's offset
        assert torch.allclose(chunk, reference[:, 5:9], atol=1e-5)
        for position in range(9, 12):                      # then one at a time
            step, cache = model(tokens[:, position:position + 1], cache)
            assert torch.allclose(step[:, 0], reference[:, position], atol=1e-5)
    assert cache[0][0].shape[2] == 12


def test_attention_scales_scores_by_the_square_root_of_head_dim():
    model = decoder.tiny_decoder(seed=0, vocab=5, d_model=16, n_heads=1, n_layers=1, max_len=8)
    attention = model.blocks[0].attention
    x = torch.randn(1, 3, 16)
    with torch.no_grad():
        out, _ = attention(x)
        q, (k, v) = attention.query(x), attention.key_value(x).chunk(2, dim=-1)
        weights = torch.softmax((q @ k.transpose(-2, -1) / math.sqrt(16)).masked_fill(
            torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf")), dim=-1)
        assert torch.allclose(out, attention.out(weights @ v), atol=1e-6)


def test_generation_is_greedy_and_the_same_with_and_without_the_cache():
    model = decoder.tiny_decoder(seed=3, **SHAPES[1])
    prompt = torch.randint(0, model.vocab, (3, 4), generator=torch.Generator().manual_seed(1))
    cached = decoder.generate(model, prompt, 10, use_cache=True)
    uncached = decoder.generate(model, prompt, 10, use_cache=False)
    assert cached.tokens.shape == (3, 14) and cached.logits.shape == (3, 10, model.vocab)
    assert torch.equal(cached.tokens, uncached.tokens) and torch.equal(cached.tokens[:, :4], prompt)
    assert torch.allclose(cached.logits, uncached.logits, atol=1e-5)
    with torch.no_grad():
        for step in range(10):
            reference = reference_forward(model, cached.tokens[:, :4 + step])[:, -1]
            assert torch.allclose(cached.logits[:, step], reference, atol=1e-5)
            assert torch.equal(cached.tokens[:, 4 + step], reference.argmax(-1))


def test_score_counts_by_hand():
    model = decoder.tiny_decoder(seed=0, vocab=7, d_model=8, n_heads=2, n_layers=2, max_len=16)
    with torch.no_grad():
        _, cache = model(torch.zeros(1, 2, dtype=torch.long))
        assert model.scores_needed() == 3                          # 1 + 2 causal scores
        model(torch.zeros(1, 3, dtype=torch.long), cache)
    assert model.scores_needed() == 3 + 3 * 2 + 6                   # 3 queries x 2 cached keys + 3 x 4 / 2 among them
    assert all(block.attention.scores_needed == 15 for block in model.blocks)
    model.reset_counts()
    assert all(block.attention.scores_needed == 0 for block in model.blocks)


def test_truncate_keeps_the_first_positions():
    model = decoder.tiny_decoder(seed=0, vocab=7, d_model=8, n_heads=2, n_layers=2, max_len=16)
    tokens = torch.randint(0, 7, (1, 6))
    with torch.no_grad():
        _, cache = model(tokens)
        short = decoder.truncate(cache, 4)
        assert all(k.shape[2] == v.shape[2] == 4 for k, v in short)
        assert torch.equal(short[1][0], cache[1][0][:, :, :4]) and torch.equal(short[0][1], cache[0][1][:, :, :4])
        logits, _ = model(tokens[:, 4:], short)
        assert torch.allclose(logits, model(tokens)[0][:, 4:], atol=1e-5)
    assert decoder.truncate(cache, 0)[0][0].shape[2] == 0
    with pytest.raises(ValueError, match="length"):
        decoder.truncate(cache, 7)


def test_cache_memory_formula_and_real_bytes():
    assert decoder.kv_cache_bytes(32, 32, 128, 4096, 2) == 2 * 2**30
    assert decoder.kv_cache_bytes(2, 3, 4, 25, 4, batch=3) == 2 * 2 * 3 * 4 * 25 * 4 * 3
    model = decoder.tiny_decoder(seed=0, vocab=11, d_model=12, n_heads=6, n_layers=2, max_len=40, n_kv_heads=3)
    with torch.no_grad():
        _, cache = model(torch.zeros(2, 25, dtype=torch.long))
    assert decoder.cache_nbytes(cache) == decoder.kv_cache_bytes(2, 3, 2, 25, 4, batch=2)


def test_tiny_decoder_is_reproducible_and_leaves_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    first = decoder.tiny_decoder(seed=2, **SHAPES[0])
    assert torch.equal(torch.rand(1), expected)
    second = decoder.tiny_decoder(seed=2, **SHAPES[0])
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not first.training


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="d_model"):
        decoder.TinyDecoder(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="n_kv_heads"):
        decoder.TinyDecoder(d_model=12, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="n_layers"):
        decoder.TinyDecoder(n_layers=0)
    with pytest.raises(ValueError, match="vocab"):
        decoder.TinyDecoder(vocab=1)
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=8, n_heads=2, n_layers=1, max_len=8)
    with pytest.raises(ValueError, match="n_new"):
        decoder.generate(model, torch.tensor([[1, 2]]), 8)
    decoder.generate(model, torch.tensor([[1, 2]]), 7)
    with pytest.raises(ValueError, match="prompt"):
        decoder.generate(model, torch.tensor([[1, 20]]), 2)
    with pytest.raises(ValueError, match="prompt"):
        decoder.generate(model, torch.tensor([[-1, 2]]), 2)
    with pytest.raises(ValueError, match="prompt"):
        decoder.generate(model, torch.tensor([1, 2]), 2)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="bytes_per_value"):
        decoder.kv_cache_bytes(1, 1, 1, 1, 3)


@pytest.mark.parametrize("sizes,message", [
    (dict(vocab=1), r"^vocab must be an integer in \[2, 50000\]"),
    (dict(vocab=50_001), r"^vocab must be an integer in \[2, 50000\]"),
    (dict(d_model=2, n_heads=1), r"^d_model must be an integer in \[4, 1024\]"),
    (dict(d_model=1032, n_heads=4), r"^d_model must be an integer in \[4, 1024\]"),
    (dict(n_heads=33, d_model=66), r"^n_heads must be an integer in \[1, 32\]"),
    (dict(n_heads=4, n_kv_heads=3), r"^n_kv_heads must be one of \[1, 2, 4\]"),
    (dict(n_layers=25), r"^n_layers must be an integer in \[1, 24\]"),
    (dict(max_len=1), r"^max_len must be an integer in \[2, 4096\]"),
    (dict(max_len=4097), r"^max_len must be an integer in \[2, 4096\]"),
    (dict(d_model=10, n_heads=4), r"^d_model must be a multiple of n_heads=4, got 10$"),
])
def test_construction_messages_name_the_argument_and_its_range(sizes, message):
    with pytest.raises(ValueError, match=message):
        decoder.TinyDecoder(**sizes)


def test_the_bounds_themselves_are_allowed():
    decoder.TinyDecoder(vocab=2, d_model=4, n_heads=1, n_layers=1, max_len=2)
    model = decoder.TinyDecoder(vocab=5, d_model=32, n_heads=32, n_layers=1, max_len=4096, n_kv_heads=32)
    assert model.head_dim == 1 and model.n_kv_heads == 32
    assert decoder.TinyDecoder(vocab=5, d_model=8, n_heads=4, n_layers=1, max_len=8).n_kv_heads == 4
    with pytest.raises(ValueError, match=r"^seed must be an integer"):
        decoder.tiny_decoder(seed=-1, vocab=5)


@pytest.mark.parametrize("arguments,message", [
    (dict(n_layers=0), r"^n_layers must be an integer in \[1, 1000\]"),
    (dict(n_kv_heads=1001), r"^n_kv_heads must be an integer in \[1, 1000\]"),
    (dict(head_dim=100_001), r"^head_dim must be an integer in \[1, 100000\]"),
    (dict(seq_len=-1), r"^seq_len must be an integer in \[0, 100000000\]"),
    (dict(bytes_per_value=3), r"^bytes_per_value must be one of \[1, 2, 4, 8\]"),
    (dict(batch=0), r"^batch must be an integer in \[1, 1000000\]"),
])
def test_cache_formula_messages(arguments, message):
    sizes = dict(n_layers=1, n_kv_heads=1, head_dim=1, seq_len=1, bytes_per_value=1, batch=1) | arguments
    with pytest.raises(ValueError, match=message):
        decoder.kv_cache_bytes(**sizes)
    assert decoder.kv_cache_bytes(1000, 1000, 100_000, 0, 8, 1_000_000) == 0
    assert decoder.kv_cache_bytes(1, 1, 1, 100_000_000, 1, 1) == 2 * 100_000_000


def test_generation_messages():
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=8, n_heads=2, n_layers=1, max_len=8)
    with pytest.raises(ValueError, match=r"^prompt must be token ids of shape \(batch, length >= 1\)"):
        decoder.generate(model, torch.zeros(1, 0, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"^prompt must be token ids"):
        decoder.generate(model, torch.zeros(1, 2), 2)
    with pytest.raises(ValueError, match=r"^prompt must hold token ids in \[0, 9\]$"):
        decoder.generate(model, torch.tensor([[10]]), 2)
    with pytest.raises(ValueError, match=r"^n_new must be an integer in \[1, 7\]"):
        decoder.generate(model, torch.tensor([[1, 2]]), 0)
    with pytest.raises(ValueError, match=r"^sequence length must be at most max_len=8, got 9$"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^tokens must have shape \(batch, length\)"):
        model(torch.zeros(9, dtype=torch.long))
