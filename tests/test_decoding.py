"""Tests for helpers.decoding: KV-cached generation equals recomputation; counts and memory formulas."""
import pytest
import torch

from helpers import decoding as D


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cached_generation_matches_uncached_on_random_models_and_prompts(seed):
    gen = torch.Generator().manual_seed(seed)
    n_layers, n_heads = 1 + seed % 3, (1, 2, 4, 2)[seed]
    model = D.tiny_decoder(vocab=17 + seed, d_model=8 * n_heads, n_heads=n_heads, n_layers=n_layers,
                           max_len=64, seed=seed)
    prompt = torch.randint(0, model.vocab, (2, 1 + seed * 3), generator=gen)
    cached = D.generate(model, prompt, 20, use_cache=True)
    uncached = D.generate(model, prompt, 20, use_cache=False)
    assert torch.equal(cached.tokens, uncached.tokens)
    assert torch.allclose(cached.logits, uncached.logits, atol=1e-5, rtol=0)
    assert cached.tokens.shape == (2, prompt.shape[1] + 20)
    assert torch.equal(cached.tokens[:, :prompt.shape[1]], prompt)


def test_one_dimensional_prompt_is_accepted():
    model = D.tiny_decoder(vocab=10, d_model=8, n_heads=2, n_layers=1, max_len=16)
    out = D.generate(model, torch.tensor([1, 2, 3]), 4)
    assert out.tokens.shape == (1, 7) and out.logits.shape == (1, 4, 10)


@pytest.mark.parametrize("n", [1, 5, 16])
def test_measured_score_counts_match_formulas(n):
    model = D.tiny_decoder(vocab=11, d_model=8, n_heads=2, n_layers=2, max_len=32)
    assert D.measured_score_counts(model, n) == D.attention_score_counts(n)


def test_score_count_formulas():
    assert D.attention_score_counts(64) == {"cached": 2080, "uncached": 89440}
    ratio = D.attention_score_counts(256)["uncached"] / D.attention_score_counts(256)["cached"]
    assert round(ratio) == 171


def test_kv_cache_bytes_matches_real_cache():
    model = D.tiny_decoder(vocab=11, d_model=12, n_heads=3, n_layers=2, max_len=40)
    _, cache = model(torch.zeros(1, 25, dtype=torch.long))
    assert D.cache_nbytes(cache) == D.kv_cache_bytes(2, 3, 4, 25, 4)
    assert D.kv_cache_bytes(32, 32, 128, 4096, 2) == 2 * 2**30


def test_step_times_and_explorer_return_positive_times():
    model = D.tiny_decoder(vocab=11, d_model=8, n_heads=2, n_layers=1, max_len=64)
    times = D.step_times(model, [4, 16], min_run_time=0.001)
    assert len(times["cached"]) == len(times["uncached"]) == 2
    assert all(t > 0 for t in times["cached"] + times["uncached"])
    fig, numbers = D.decoding_explorer(model, length=16)
    assert numbers["speed-up"] > 0 and fig.axes


def test_validation():
    with pytest.raises(ValueError, match="d_model"):
        D.TinyDecoder(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="n_layers"):
        D.TinyDecoder(n_layers=0)
    model = D.tiny_decoder(vocab=10, d_model=8, n_heads=2, n_layers=1, max_len=8)
    with pytest.raises(ValueError, match="n_new"):
        D.generate(model, torch.tensor([1, 2]), 50)
    with pytest.raises(ValueError, match="prompt"):
        D.generate(model, torch.tensor([1, 20]), 2)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="bytes_per_value"):
        D.kv_cache_bytes(1, 1, 1, 1, 3)
    with pytest.raises(ValueError, match="length"):
        D.decoding_explorer(model, length=100)
