"""Notebook 07, part 2: serving a transformer decoder, measured on a tiny one.

KV-cache timings, prefill against decode with a roofline, continuous batching from measured step
latencies, speculative decoding with a trained one-layer draft, and cache invalidation. The science
lives in ``helpers.scratch`` (decoder, decode_costs, serving, speculative).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional

from helpers import exercises
from helpers import progress as cell_progress
from helpers.plotting import figure
from helpers.progress import Report
from helpers.scratch import serving
from helpers.scratch.decode_costs import forward_bytes, forward_flops
from helpers.scratch.decoder import TinyDecoder, generate, kv_cache_bytes, truncate
from helpers.scratch.speculative import speculative_generate
from helpers.timing import time_fastest_calls
from helpers.validation import check_float, check_int


# ----------------------------------------------------------------------------- a toy language
def word_language(n_sequences: int, length: int, n_words: int = 16, vocab: int = 32, language: int = 0,
                  seed: int = 0) -> torch.Tensor:
    """Token sequences (n_sequences, length) made of words: a lexicon of ``n_words`` random token strings of
    2-5 tokens (fixed by ``language``), strung together in an order drawn from ``seed``. Inside a word the
    next token is certain; at a word boundary it is a guess among the words."""
    check_int("n_sequences", n_sequences, 1, 1_000_000)
    check_int("length", length, 2, 4096)
    check_int("n_words", n_words, 1, 10_000)
    check_int("vocab", vocab, 2, 50_000)
    lexicon_generator = torch.Generator().manual_seed(check_int("language", language, 0, 2**32 - 1))
    words = [torch.randint(0, vocab, (int(torch.randint(2, 6, (1,), generator=lexicon_generator)),),
                           generator=lexicon_generator) for _ in range(n_words)]
    order = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    per_sequence = length // 2 + 1                                          # words are at least 2 tokens long
    picks = torch.randint(0, n_words, (n_sequences, per_sequence), generator=order)
    return torch.stack([torch.cat([words[int(w)] for w in row])[:length] for row in picks])


def train_language_model(model: TinyDecoder, sequences: torch.Tensor, steps: int, lr: float = 1e-2,
                         batch_size: int = 16, seed: int = 0, progress: Report | None = None) -> list[float]:
    """Next-token training with AdamW on random rows of ``sequences``; the loss of each step (nats).
    Progress goes to ``progress`` if given, else to the notebook cell's bar."""
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 1.0, lo_open=True)
    check_int("batch_size", batch_size, 1, len(sequences))
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    bar = cell_progress.cell_bar() if progress is None else None
    if bar is not None:
        bar.start_run(f"training a {model.n_layers}-layer language model for {steps} steps")
    model.train()
    losses = []
    for step in range(steps):
        batch = sequences[torch.randint(0, len(sequences), (batch_size,), generator=generator)]
        logits, _ = model(batch[:, :-1])                                     # (B, T - 1, vocab)
        loss = functional.cross_entropy(logits.reshape(-1, model.vocab), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress((step + 1) / steps)
        elif bar is not None:
            bar.update((step + 1) / steps, f"step {step + 1}/{steps} · loss {losses[-1]:.2f}", force=step + 1 == steps)
    model.eval()
    return losses


# ----------------------------------------------------------------------------- costs of one step
def step_cost_rows(model: TinyDecoder, lengths: Sequence[int]) -> list[dict]:
    """FLOPs and least bytes of the step that produces token ``n + 1``, without and with a cache, per length.
    Keys and values are read from the cache with one, and computed and written (not read) without one."""
    rows = []
    for n in [check_int("length", n, 1, model.max_len - 1) for n in lengths]:
        for name, new, cached in (("no cache", n, 0), ("KV cache", 1, n - 1)):
            flops, traffic = forward_flops(model, new, cached), forward_bytes(model, new, cached)
            rows.append({"context": n, "step": name, **{f"MFLOP, {k}": v / 1e6 for k, v in flops.items()},
                         "MB read, weights": traffic["weights"] / 1e6,
                         "MB keys and values": traffic["kv cache"] / 1e6,
                         "FLOP per byte": sum(flops.values()) / sum(traffic.values())})
    return rows


@torch.no_grad()
def flops_match_counter(model: TinyDecoder, lengths: Sequence[int]) -> bool:
    """Whether :func:`forward_flops` equals ``torch.utils.flop_counter`` for uncached and cached steps."""
    from torch.utils.flop_counter import FlopCounterMode

    for n in lengths:
        tokens = random_tokens(model, 1, n)
        _, cache = model(tokens[:, :-1])
        for new, cached, fed, past in ((n, 0, tokens, None), (1, n - 1, tokens[:, -1:], cache)):
            with FlopCounterMode(display=False) as counter:
                model(fed, past)
            if counter.get_total_flops() != sum(forward_flops(model, new, cached).values()):
                return False
    return True


# ----------------------------------------------------------------------------- timing
def random_tokens(model: TinyDecoder, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Random token ids of shape (batch, length) on the model's device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.vocab, (batch, length), generator=generator).to(model.head.weight.device)


@torch.no_grad()
def step_times(model: TinyDecoder, lengths: Sequence[int], rounds: int = 5, seed: int = 0,
               progress: Report | None = None) -> dict[str, list[float]]:
    """Seconds to produce the next token at each context length ``n``: rerun all ``n`` tokens (no cache), or
    feed the newest against ``n - 1`` cached positions; the fastest call over ``rounds`` interleaved rounds."""
    lengths = [check_int("length", n, 2, model.max_len) for n in lengths]
    if not lengths:
        raise ValueError("lengths must name at least one context length")
    times: dict[str, list[float]] = {"length": lengths, "no cache": [], "KV cache": []}
    for index, n in enumerate(lengths):
        tokens = random_tokens(model, 1, n, seed)
        _, cache = model(tokens[:, :-1])
        measured = time_fastest_calls({"no cache": lambda tokens=tokens: model(tokens),
                                       "KV cache": lambda tokens=tokens, cache=cache: model(tokens[:, -1:], cache)},
                                      rounds)
        times["no cache"].append(measured["no cache"])
        times["KV cache"].append(measured["KV cache"])
        if progress is not None:
            progress((index + 1) / len(lengths))
    return times


@torch.no_grad()
def batch_step_tables(model: TinyDecoder, batch_sizes: Sequence[int], context: int, prompt: int | None,
                      rounds: int = 5, seed: int = 0) -> dict[str, dict[int, float]]:
    """Seconds for one decoding step of ``b`` sequences (one new token each, ``context`` cached positions)
    and for the prefill of ``b`` prompts of ``prompt`` tokens (``None``: decode only): the fastest call over
    ``rounds`` rounds."""
    sizes = [check_int("batch_size", b, 1, 1024) for b in batch_sizes]
    check_int("context", context, 1, model.max_len - 1)
    kinds = ("decode",) if prompt is None else ("decode", "prefill")
    passes = {}
    for b in sizes:
        tokens = random_tokens(model, b, context + 1, seed)
        _, cache = model(tokens[:, :-1])
        passes[f"decode {b}"] = lambda tokens=tokens, cache=cache: model(tokens[:, -1:], cache)
        if prompt is not None:
            prompts = random_tokens(model, b, check_int("prompt", prompt, 1, model.max_len), seed + 1)
            passes[f"prefill {b}"] = lambda prompts=prompts: model(prompts)
    measured = time_fastest_calls(passes, rounds)
    return {kind: {b: measured[f"{kind} {b}"] for b in sizes} for kind in kinds}


def machine_roofs(weight_bytes: int, rounds: int = 5, memory_bytes: int = 64 * 2**20) -> dict[str, float]:
    """This machine's roofs on the current thread count: FLOP/s of a 512 x 512 float32 matrix product, and
    bytes/s read from a buffer the size of the model's weights (which fits in the CPU's caches) and from
    one of ``memory_bytes`` (far larger than the caches: main memory, where an LLM's weights live)."""
    check_int("weight_bytes", weight_bytes, 1024, 2**30)
    check_int("memory_bytes", memory_bytes, 1024, 2**30)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    small, large = torch.randn(weight_bytes // 4), torch.randn(memory_bytes // 4)
    measured = time_fastest_calls({"matmul": lambda: a @ b, "cache": lambda: small.sum(),
                                   "memory": lambda: large.sum()}, rounds)
    return {"FLOP/s": 2 * 512**3 / measured["matmul"], "cache bytes/s": weight_bytes / measured["cache"],
            "memory bytes/s": memory_bytes / measured["memory"]}


# ----------------------------------------------------------------------------- serving generations
def generation_sweep(step: Mapping[int, float], prefill: Mapping[int, float], loads: Sequence[float],
                     output_lengths: tuple[int, int], n_requests: int, max_batch: int, seed: int = 0) -> list[dict]:
    """Static against continuous batching of generation requests on the same Poisson streams.

    Output lengths are uniform in ``output_lengths``; a load of 1 is the arrival rate that a server
    generating one request at a time could just sustain. Each row: medians and 95th percentiles of the
    time to first token (TTFT) and per later output token (TPOT), and whether the queue stayed bounded
    (the last fifth of requests waited no more than three times as long as the first fifth, give or take
    a few steps).
    """
    low, high = (check_int("output_lengths", n, 1, 10_000) for n in output_lengths)
    check_int("n_requests", n_requests, 10, 1_000_000)
    rng = np.random.default_rng(check_int("seed", seed, 0, 2**32 - 1))
    lengths = rng.integers(low, high + 1, n_requests)
    one_at_a_time = prefill[min(prefill)] + ((low + high) / 2 - 1) * step[min(step)]   # seconds per request
    rows = []
    for load in loads:
        arrivals = serving.poisson_arrivals(check_float("load", load, 0.0, 100.0, lo_open=True) / one_at_a_time,
                                            n_requests, seed)
        for policy in serving.POLICIES:
            result = serving.simulate_generation(step, prefill, arrivals, lengths, max_batch, policy)
            early, late = np.median(result.ttft[:n_requests // 5]), np.median(result.ttft[-n_requests // 5:])
            rows.append({"load": load, "policy": policy,
                         "TTFT p50 (ms)": float(np.median(result.ttft)) * 1e3,
                         "TTFT p95 (ms)": float(np.percentile(result.ttft, 95)) * 1e3,
                         "TPOT p50 (ms)": float(np.median(result.tpot[lengths > 1])) * 1e3,
                         "stable": bool(late <= 3 * early + 10 * step[min(step)])})
    return rows


# ----------------------------------------------------------------------------- speculative decoding
@torch.no_grad()
def speculation_run(target: TinyDecoder, draft: TinyDecoder, prompts: torch.Tensor, n_new: int, lookahead: int
                    ) -> dict[str, float]:
    """Speculative decoding of each prompt row: whether every token equals the target's greedy decoding,
    the share of proposals accepted, and tokens produced per target pass."""
    identical, proposed, accepted, passes = True, 0, 0, 0
    for prompt in prompts:
        result = speculative_generate(target, draft, prompt[None], n_new, lookahead)
        identical &= torch.equal(result.tokens, generate(target, prompt[None], n_new).tokens)
        proposed, accepted = proposed + result.proposed, accepted + result.accepted
        passes += result.target_passes
    return {"identical": identical, "acceptance": accepted / proposed, "tokens per pass": len(prompts) * n_new / passes}


@torch.no_grad()
def speculation_times(target: TinyDecoder, draft: TinyDecoder, prompt: torch.Tensor, n_new: int, lookahead: int,
                      rounds: int = 3) -> dict[str, float]:
    """Seconds to generate ``n_new`` tokens greedily with the target alone, with the draft alone, and
    speculatively: the fastest of ``rounds`` calls, called in turn."""
    return time_fastest_calls({"target alone": lambda: generate(target, prompt, n_new),
                               "draft alone": lambda: generate(draft, prompt, n_new),
                               "speculative": lambda: speculative_generate(target, draft, prompt, n_new, lookahead)},
                              rounds, burst=1)


@torch.no_grad()
def verify_cost(model: TinyDecoder, context: int, lookahead: int, rounds: int = 5, seed: int = 0) -> float:
    """Time of one pass over ``lookahead + 1`` new tokens (what the target runs to check a draft's guesses)
    over one decoding step, both after ``context`` cached positions: the fastest calls, interleaved."""
    check_int("lookahead", lookahead, 1, 64)
    check_int("context", context, 1, model.max_len - lookahead - 1)
    tokens = random_tokens(model, 1, context + lookahead + 1, seed)
    _, cache = model(tokens[:, :context])
    measured = time_fastest_calls({"verify": lambda: model(tokens[:, context:], cache),
                                   "step": lambda: model(tokens[:, context:context + 1], cache)}, rounds)
    return measured["verify"] / measured["step"]


# ----------------------------------------------------------------------------- caches
@torch.no_grad()
def invalidation_check(model: TinyDecoder, tokens: torch.Tensor, position: int) -> dict[str, float]:
    """Edit the token at ``position`` of ``tokens`` (1, T) and compare, with a full recomputation of the edited
    sequence, the last logits from the cache truncated before the edit and from the stale cache."""
    check_int("position", position, 1, tokens.shape[1] - 2)
    edited = tokens.clone()
    edited[0, position] = (edited[0, position] + 1) % model.vocab
    _, old_cache = model(tokens[:, :-1])
    reference, _ = model(edited)
    kept, _ = model(edited[:, position:], truncate(old_cache, position))
    stale, _ = model(edited[:, -1:], old_cache)
    return {"truncated cache": float((kept[0, -1] - reference[0, -1]).abs().max()),
            "stale cache": float((stale[0, -1] - reference[0, -1]).abs().max())}


# ----------------------------------------------------------------------------- explorer and exercise
def decoding_explorer(model: TinyDecoder, length: int = 128, progress: Report | None = None):
    """Explorer: time per token up to context ``length``, with and without a KV cache (ten lengths)."""
    length = check_int("length", length, 20, model.max_len)
    lengths = sorted({max(2, round(length * k / 10)) for k in range(1, 11)})
    times = step_times(model, lengths, rounds=2, progress=progress)
    fig, ax = figure(f"Time per token up to {length} tokens", "context length (tokens)", "time per token (ms)",
                     figsize=(7.6, 3.8))
    for name, style in (("no cache", "o-"), ("KV cache", "s-")):
        ax.plot(lengths, [t * 1e3 for t in times[name]], style, label=name)
    ax.set_ylim(0, None)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig, {"ms per token, no cache": times["no cache"][-1] * 1e3,
                 "ms per token, KV cache": times["KV cache"][-1] * 1e3,
                 "speed-up from the cache": times["no cache"][-1] / times["KV cache"][-1],
                 "cache memory (KiB)": kv_cache_bytes(model.n_layers, model.n_kv_heads, model.head_dim, length) / 1024}


KV_EXERCISE_CASES = (
    dict(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096, bytes_per_value=2, batch=1),
    dict(n_layers=2, n_kv_heads=4, head_dim=16, seq_len=256, bytes_per_value=4, batch=1),
    dict(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=8192, bytes_per_value=2, batch=16),
)


def check_kv_cache_exercise(fn: Callable[..., int] | None) -> bool:
    """Check a learner's KV-cache size formula on a 7B-like model, a tiny one and a 70B-like one with GQA."""
    answers = []
    for case in KV_EXERCISE_CASES:
        answer = exercises.attempt(fn and (lambda case=case: fn(**case)), what="my_kv_cache_bytes")
        if answer is exercises.NOT_ATTEMPTED:
            return False
        truth = kv_cache_bytes(**case)
        if answer != truth:
            hint = ("keys and values are both cached: a factor of 2" if answer * 2 == truth else
                    "multiply every layer, key/value head, dimension, position, byte and sequence")
            return exercises.wrong(f"for {case} the cache holds {truth:,} bytes, not {answer:,}", hint)
        answers.append(answer)
    return exercises.correct(f"a 32-layer model with 32 key/value heads of 128 dimensions holds "
                             f"{answers[0] / 2**30:.0f} GiB of fp16 cache per 4,096-token sequence; with 8 shared "
                             f"key/value heads, 80 layers and a batch of 16 at 8k tokens, "
                             f"{answers[2] / 2**30:.0f} GiB.")
