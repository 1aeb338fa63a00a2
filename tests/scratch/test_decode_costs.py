"""helpers.scratch.decode_costs against torch's FLOP counter, hand counts and the decoder's own score counter."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers.scratch import decode_costs, decoder

MODELS = [dict(vocab=17, d_model=16, n_heads=4, n_layers=2, max_len=40),
          dict(vocab=11, d_model=24, n_heads=6, n_layers=3, max_len=40, n_kv_heads=2)]


@pytest.mark.parametrize("sizes", MODELS)
@pytest.mark.parametrize("new,cached,batch", [(7, 0, 1), (1, 9, 3), (4, 5, 2), (1, 0, 1)])
def test_flop_formulas_equal_torchs_flop_counter(sizes, new, cached, batch):
    model = decoder.tiny_decoder(seed=0, **sizes)
    with torch.no_grad():
        cache = model(torch.randint(0, model.vocab, (batch, cached)))[1] if cached else None
        with FlopCounterMode(display=False) as counter:
            model(torch.randint(0, model.vocab, (batch, new)), cache)
    assert counter.get_total_flops() == sum(decode_costs.forward_flops(model, new, cached, batch).values())


def test_flops_and_bytes_by_hand():
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=4, n_heads=2, n_layers=1, max_len=16)
    flops = decode_costs.forward_flops(model, new=1, cached=3)
    assert flops == {"projections": 2 * (16 + 32 + 16 + 128), "attention": 2 * 2 * 2 * 1 * 4 * 2, "head": 2 * 4 * 10}
    weights = 4 * 4 + 4 + 4 * 8 + 8 + 4 * 4 + 4 + 4 * 16 + 16 + 16 * 4 + 4 + 3 * 8 + 10 * 4 + 10  # 3 norms
    assert decode_costs.forward_bytes(model, 1, 3) == {"weights": 4 * weights, "kv cache": 2 * 1 * 2 * 2 * 4 * 4}
    assert decode_costs.forward_bytes(model, 1, 3, batch=2, bytes_per_value=2)["kv cache"] == 2 * 2 * 2 * 4 * 2 * 2
    intensity = decode_costs.arithmetic_intensity(model, 1, 3)
    assert intensity == pytest.approx(sum(flops.values()) / (4 * weights + 128))


def test_single_sequence_decode_does_about_half_a_flop_per_float32_byte():
    model = decoder.tiny_decoder(seed=0, vocab=64, d_model=128, n_heads=4, n_layers=4, max_len=80)
    assert decode_costs.arithmetic_intensity(model, 1, 64) == pytest.approx(0.5, abs=0.02)
    single = decode_costs.arithmetic_intensity(model, 1, 64)
    assert decode_costs.arithmetic_intensity(model, 1, 64, batch=16) > 5 * single


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_generation_score_counts_match_the_decoder(n):
    model = decoder.tiny_decoder(seed=0, vocab=11, d_model=8, n_heads=2, n_layers=2, max_len=32)
    counts = {}
    for name, use_cache in (("cached", True), ("uncached", False)):
        model.reset_counts()
        decoder.generate(model, torch.tensor([[3]]), n, use_cache=use_cache)
        counts[name] = model.scores_needed()
    assert counts == decode_costs.generation_score_counts(n)


def test_generation_score_counts_by_hand():
    assert decode_costs.generation_score_counts(1) == {"cached": 1, "uncached": 1}
    assert decode_costs.generation_score_counts(3) == {"cached": 6, "uncached": 10}
    assert decode_costs.generation_score_counts(64) == {"cached": 2080, "uncached": 45760}


def test_validation_names_the_argument():
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=4, n_heads=2, n_layers=1, max_len=16)
    with pytest.raises(ValueError, match="new"):
        decode_costs.forward_flops(model, 0)
    with pytest.raises(ValueError, match="cached"):
        decode_costs.forward_flops(model, 4, 13)
    with pytest.raises(ValueError, match="batch"):
        decode_costs.forward_bytes(model, 1, 0, batch=0)
    with pytest.raises(ValueError, match="bytes_per_value"):
        decode_costs.forward_bytes(model, 1, 0, bytes_per_value=3)
    with pytest.raises(ValueError, match="n"):
        decode_costs.generation_score_counts(0)


@pytest.mark.parametrize("call,message", [
    (lambda m: decode_costs.forward_flops(m, 17), r"^new must be an integer in \[1, 16\]"),
    (lambda m: decode_costs.forward_flops(m, 4, -1), r"^cached must be an integer in \[0, 12\]"),
    (lambda m: decode_costs.forward_flops(m, 1, 0, 1_000_001), r"^batch must be an integer in \[1, 1000000\]"),
    (lambda m: decode_costs.forward_bytes(m, 0), r"^new must be an integer in \[1, 16\]"),
    (lambda m: decode_costs.forward_bytes(m, 2, 15), r"^cached must be an integer in \[0, 14\]"),
    (lambda m: decode_costs.forward_bytes(m, 1, 0, 1_000_001), r"^batch must be an integer"),
    (lambda m: decode_costs.forward_bytes(m, 1, 0, 1, 16), r"^bytes_per_value must be one of \[1, 2, 4, 8\]"),
    (lambda m: decode_costs.generation_score_counts(10_000_001), r"^n must be an integer in \[1, 10000000\]"),
])
def test_messages_name_the_argument_and_its_range(call, message):
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=4, n_heads=2, n_layers=1, max_len=16)
    with pytest.raises(ValueError, match=message):
        call(model)


def test_the_bounds_themselves_are_allowed():
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=4, n_heads=2, n_layers=1, max_len=16)
    assert decode_costs.forward_flops(model, 16)["head"] == 16 * 2 * 4 * 10
    assert decode_costs.forward_flops(model, 1, 15, 1_000_000)["head"] == 1_000_000 * 2 * 4 * 10
    assert decode_costs.forward_bytes(model, 1, 15, 1_000_000, 8)["kv cache"] == 2 * 2 * 2 * 16 * 8 * 1_000_000
    one_byte = decode_costs.forward_bytes(model, 1, 0, 1, 1)["weights"]
    assert one_byte == decode_costs.forward_bytes(model, 1)["weights"] // 4
    assert decode_costs.generation_score_counts(10_000_000)["cached"] == 10_000_000 * 10_000_001 // 2


def test_defaults_and_the_batch_in_the_intensity():
    model = decoder.tiny_decoder(seed=0, vocab=10, d_model=4, n_heads=2, n_layers=1, max_len=16)
    assert decode_costs.forward_bytes(model, 1) == decode_costs.forward_bytes(model, 1, 0, 1, 4)
    assert decode_costs.forward_flops(model, 2) == decode_costs.forward_flops(model, 2, 0, 1)
    flops = sum(decode_costs.forward_flops(model, 1, 3, 2).values())
    traffic = sum(decode_costs.forward_bytes(model, 1, 3, 2).values())
    assert decode_costs.arithmetic_intensity(model, 1, 3, 2) == pytest.approx(flops / traffic)
    assert decode_costs.arithmetic_intensity(model, 2) == pytest.approx(
        sum(decode_costs.forward_flops(model, 2).values()) / sum(decode_costs.forward_bytes(model, 2).values()))
