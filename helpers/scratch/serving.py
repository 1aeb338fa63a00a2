"""A serving simulator: requests arrive at random, one worker answers them alone or in batches.

Nothing sleeps: each batch's finishing time is computed from a table of *measured* latencies per batch
size (linear interpolation between measured sizes), so a stream of thousands of requests is simulated in
milliseconds, exactly for that table. Two servers are modelled:

* :func:`simulate_serving`: one forward pass per request batch (a classifier). When the worker is free,
  it closes a batch once ``max_batch`` requests wait or the oldest has waited ``max_wait``; with
  ``max_wait = 0`` it takes whatever is queued at that moment.
* :func:`simulate_generation`: requests that each generate several tokens, one decoding step at a time.
  *Static* batching admits a new batch only when every sequence of the last one is done; *continuous*
  (iteration-level) batching admits waiting requests before every step (Yu et al. 2022, Orca).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from helpers.validation import check_choice, check_float, check_int

Latency = Callable[[float], float]
POLICIES = ("static", "continuous")


def latency_from_table(table: Mapping[int, float]) -> Latency:
    """Seconds for a batch of any size, interpolated linearly between the measured sizes in ``table``."""
    if not table or any(size < 1 or seconds <= 0 for size, seconds in table.items()):
        raise ValueError("table must map at least one batch size >= 1 to a positive number of seconds")
    sizes = np.array(sorted(table), dtype=float)
    seconds = np.array([table[int(size)] for size in sizes])
    return lambda size: float(np.interp(size, sizes, seconds))


def poisson_arrivals(rate: float, n_requests: int, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds) of a Poisson stream: independent exponential gaps of mean ``1 / rate``."""
    check_float("rate", rate, 0.0, 1e9, lo_open=True)
    check_int("n_requests", n_requests, 1, 1_000_000)
    rng = np.random.default_rng(check_int("seed", seed, 0, 2**32 - 1))
    return np.cumsum(rng.exponential(1.0 / rate, n_requests))


def check_arrivals(arrivals: np.ndarray) -> np.ndarray:
    """``arrivals`` as a float array, checked to be a non-empty sorted 1-D array of times."""
    arrivals = np.asarray(arrivals, dtype=float)
    if arrivals.ndim != 1 or len(arrivals) == 0 or np.any(np.diff(arrivals) < 0):
        raise ValueError("arrivals must be a non-empty, sorted 1-D array of times")
    return arrivals


@dataclass
class ServingResult:
    """One simulated run: each request's latency (seconds from arrival to answer) and the batches formed."""

    latencies: np.ndarray
    batch_sizes: np.ndarray

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of latency, in seconds."""
        return float(np.percentile(self.latencies, check_float("q", q, 0.0, 100.0)))


def simulate_serving(latency: Mapping[int, float], arrivals: np.ndarray, max_batch: int = 1,
                     max_wait: float = 0.0) -> ServingResult:
    """Serve ``arrivals`` with one worker that batches dynamically (``max_batch=1``: one at a time)."""
    check_int("max_batch", max_batch, 1, 4096)
    check_float("max_wait", max_wait, 0.0, 3600.0)
    seconds_for, arrivals = latency_from_table(latency), check_arrivals(arrivals)
    n, first, free_at = len(arrivals), 0, -math.inf
    latencies, sizes = np.empty(n), []
    while first < n:
        full_at = arrivals[first + max_batch - 1] if first + max_batch - 1 < n else math.inf  # batch fills
        close = max(free_at, min(arrivals[first] + max_wait, full_at))                        # batch closes
        end = min(int(np.searchsorted(arrivals, close, side="right")), first + max_batch)   # requests [first, end)
        free_at = close + seconds_for(end - first)
        latencies[first:end] = free_at - arrivals[first:end]
        sizes.append(end - first)
        first = end
    return ServingResult(latencies, np.array(sizes))


@dataclass
class GenerationResult:
    """Per request, in seconds: time to first token, time per later output token, time to the last token."""

    ttft: np.ndarray
    tpot: np.ndarray
    latency: np.ndarray


def simulate_generation(step: Mapping[int, float], prefill: Mapping[int, float], arrivals: np.ndarray,
                        output_lengths: np.ndarray, max_batch: int = 8, policy: str = "continuous"
                        ) -> GenerationResult:
    """Serve generation requests with one worker; ``step[b]`` is one decoding step for ``b`` sequences,
    ``prefill[b]`` the prompt pass for ``b`` new ones. Each sequence's first token comes with its prefill."""
    check_int("max_batch", max_batch, 1, 4096)
    check_choice("policy", policy, POLICIES)
    step_time, prefill_time, arrivals = latency_from_table(step), latency_from_table(prefill), check_arrivals(arrivals)
    lengths = np.asarray(output_lengths)
    if lengths.shape != arrivals.shape or np.any(lengths < 1):
        raise ValueError("output_lengths must hold one length >= 1 per arrival")
    n, now, queued, running = len(arrivals), 0.0, 0, []
    first_token, done_at, left = np.zeros(n), np.zeros(n), lengths.astype(int).copy()
    while queued < n or running:
        if not running:
            now = max(now, arrivals[queued])                         # idle until the next request arrives
        if policy == "continuous" or not running:                    # static admits only into an empty batch
            joining = []
            while queued < n and arrivals[queued] <= now and len(running) + len(joining) < max_batch:
                joining.append(queued)
                queued += 1
            if joining:                                              # the newcomers' prompts in one pass
                now += prefill_time(len(joining))
                first_token[joining], done_at[joining], left[joining] = now, now, left[joining] - 1
                running += joining
        active = [r for r in running if left[r] > 0]
        if active:                                                   # static: finished rows keep their slot
            now += step_time(len(running) if policy == "static" else len(active))
            left[active] -= 1
            done_at[active] = now
        if policy == "continuous" or not left[running].any():
            running = [r for r in running if left[r] > 0]
    tpot = (done_at - first_token) / np.maximum(lengths - 1, 1)
    return GenerationResult(first_token - arrivals, tpot, done_at - arrivals)
