"""Experiments of notebook 07, part 2: the toy language, timings, sweeps, speculative runs, explorer, checker."""
import numpy as np
import pytest
import torch

from helpers.experiments import nb07_inference_efficiency_decoding as nb07
from helpers.scratch import decoder

SMALL = dict(vocab=12, d_model=16, n_heads=2, n_layers=1, max_len=80)


def test_word_language_is_made_of_repeating_words():
    sequences = nb07.word_language(50, 30, n_words=3, vocab=12, language=4, seed=1)
    assert sequences.shape == (50, 30) and sequences.dtype == torch.long
    assert int(sequences.min()) >= 0 and int(sequences.max()) < 12
    assert torch.equal(sequences, nb07.word_language(50, 30, n_words=3, vocab=12, language=4, seed=1))
    others = nb07.word_language(50, 30, n_words=3, vocab=12, language=4, seed=2)
    assert not torch.equal(sequences, others)
    assert {tuple(p) for row in others.tolist() for p in zip(row[:-1], row[1:])} <= {
        tuple(p) for row in nb07.word_language(500, 30, n_words=3, vocab=12, language=4, seed=3).tolist()
        for p in zip(row[:-1], row[1:])}                   # same words, other order
    bigrams = {tuple(pair) for row in sequences.tolist() for pair in zip(row[:-1], row[1:])}
    assert len(bigrams) < 40  # three words of 2-5 tokens leave few distinct neighbours
    with pytest.raises(ValueError, match="length"):
        nb07.word_language(5, 1)


def test_language_model_training_lowers_the_loss_and_reports_progress():
    model = decoder.tiny_decoder(seed=0, **SMALL)
    seen = []
    losses = nb07.train_language_model(model, nb07.word_language(200, 20, n_words=4, vocab=12), 40, seed=0,
                                       progress=seen.append)
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5]) * 0.7
    assert seen[-1] == 1.0 and len(seen) == 40 and not model.training
    with pytest.raises(ValueError, match="steps"):
        nb07.train_language_model(model, nb07.word_language(20, 20), 0)


def test_step_costs_and_the_flop_counter():
    model = decoder.tiny_decoder(seed=0, **SMALL)
    rows = nb07.step_cost_rows(model, [8, 32])
    assert [(r["context"], r["step"]) for r in rows] == [(8, "no cache"), (8, "KV cache"), (32, "no cache"),
                                                          (32, "KV cache")]
    assert rows[2]["MFLOP, projections"] == pytest.approx(32 * rows[3]["MFLOP, projections"])
    assert nb07.flops_match_counter(model, [8, 32])


def test_timings_have_every_entry():
    model = decoder.tiny_decoder(seed=0, **SMALL)
    seen = []
    times = nb07.step_times(model, [4, 16], rounds=1, progress=seen.append)
    assert times["length"] == [4, 16] and len(times["KV cache"]) == len(times["no cache"]) == 2 and seen == [0.5, 1.0]
    tables = nb07.batch_step_tables(model, [1, 2], context=8, prompt=4, rounds=1)
    assert set(tables) == {"decode", "prefill"} and set(tables["decode"]) == {1, 2}
    assert set(nb07.batch_step_tables(model, [1], context=8, prompt=None, rounds=1)) == {"decode"}
    roofs = nb07.machine_roofs(4096, rounds=1, memory_bytes=2**20)
    assert all(v > 0 for v in roofs.values()) and set(roofs) == {"FLOP/s", "cache bytes/s", "memory bytes/s"}
    with pytest.raises(ValueError, match="length"):
        nb07.step_times(model, [1])


def test_generation_sweep_marks_an_overloaded_static_server():
    rows = nb07.generation_sweep({1: 1e-3, 8: 2e-3}, {1: 2e-3, 8: 6e-3}, [1.0, 6.0], (4, 12), 400, 8, seed=0)
    assert [(r["load"], r["policy"]) for r in rows] == [(1.0, "static"), (1.0, "continuous"), (6.0, "static"),
                                                        (6.0, "continuous")]
    by = {(r["load"], r["policy"]): r for r in rows}
    assert by[(1.0, "continuous")]["TTFT p50 (ms)"] < by[(1.0, "static")]["TTFT p50 (ms)"]
    assert by[(1.0, "continuous")]["stable"] and not by[(6.0, "static")]["stable"]
    assert all(r["TTFT p95 (ms)"] >= r["TTFT p50 (ms)"] > 0 for r in rows)


def test_speculation_helpers():
    target = decoder.tiny_decoder(seed=0, **SMALL)
    prompts = torch.randint(0, 12, (2, 3), generator=torch.Generator().manual_seed(0))
    same = nb07.speculation_run(target, target, prompts, 10, 3)
    assert same == {"identical": True, "acceptance": 1.0, "tokens per pass": pytest.approx(20 / 6)}
    other = nb07.speculation_run(target, decoder.tiny_decoder(seed=1, **SMALL), prompts, 10, 3)
    assert other["identical"] and other["acceptance"] < 1
    times = nb07.speculation_times(target, target, prompts[:1], 5, 2, rounds=1)
    assert set(times) == {"target alone", "draft alone", "speculative"}


def test_invalidation_check():
    model = decoder.tiny_decoder(seed=0, **SMALL)
    gaps = nb07.invalidation_check(model, torch.randint(0, 12, (1, 16)), 5)
    assert gaps["truncated cache"] < 1e-5 < gaps["stale cache"]
    with pytest.raises(ValueError, match="position"):
        nb07.invalidation_check(model, torch.randint(0, 12, (1, 16)), 15)


def test_decoding_explorer_reports_progress_every_tenth():
    model = decoder.tiny_decoder(seed=0, **SMALL)
    seen = []
    fig, numbers = nb07.decoding_explorer(model, length=40, progress=seen.append)
    assert len(seen) == 10 and max(np.diff([0.0] + seen)) <= 0.1 + 1e-9
    assert fig.axes[0].has_data() and numbers["speed-up from the cache"] > 0
    assert numbers["cache memory (KiB)"] == pytest.approx(2 * 1 * 2 * 8 * 40 * 4 / 1024)
    with pytest.raises(ValueError, match="length"):
        nb07.decoding_explorer(model, length=100)


def test_kv_checker_never_raises(capsys):
    def right(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value, batch):
        return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value * batch

    def forgot_values(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value, batch):
        return n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value * batch

    def stub(**kwargs):
        raise NotImplementedError

    assert nb07.check_kv_cache_exercise(right)
    assert "Correct" in capsys.readouterr().out
    assert nb07.check_kv_cache_exercise(forgot_values) is False
    assert "factor of 2" in capsys.readouterr().out
    assert nb07.check_kv_cache_exercise(lambda **kw: 1 / 0) is False
    assert nb07.check_kv_cache_exercise(stub) is False and nb07.check_kv_cache_exercise(None) is False
    assert "Not attempted" in capsys.readouterr().out


def test_verify_cost_compares_a_wide_pass_with_one_step():
    model = decoder.tiny_decoder(vocab=16, d_model=16, n_heads=2, n_layers=1, max_len=40)
    ratio = nb07.verify_cost(model, context=8, lookahead=3, rounds=2)
    assert 0.3 < ratio < 20
    with pytest.raises(ValueError, match="lookahead"):
        nb07.verify_cost(model, context=8, lookahead=0)
