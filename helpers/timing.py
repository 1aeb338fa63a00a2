"""Timing that survives a busy machine: medians of repeated blocks, interleaved rounds, fastest round.

Every timing experiment in the curriculum goes through :func:`time_many` and says what it ran on with
:func:`machine_note`: speed-ups of int8 kernels, sparse kernels and batching depend on the CPU's vector
extensions, so a ratio measured here is a fact about this machine, not a constant.
"""
from __future__ import annotations

import platform
from collections.abc import Callable, Mapping

import torch

from helpers.validation import check_float, check_int


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_note(device: torch.device | str = "cpu") -> str:
    """One line naming what a timing ran on: device, CPU model and vector extensions, threads, torch."""
    device = torch.device(device)
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        capability = torch.backends.cpu.get_cpu_capability()
        what = f"{cpu_name()}, vector extensions {capability}, {torch.get_num_threads()} torch thread(s)"
    return f"timed on {device.type} ({what}), torch {torch.__version__}"


def thread_clock(device: torch.device | str = "cpu") -> Callable[[], float] | None:
    """The clock to time a call with: on a CPU with one torch thread, the calling thread's CPU time (a busy
    machine takes turns away from a process but adds nothing to its CPU time); elsewhere None, the wall clock."""
    import time

    return time.thread_time if torch.device(device).type == "cpu" and torch.get_num_threads() == 1 else None


def time_call(fn: Callable[[], object], min_run_time: float = 0.1,
              clock: Callable[[], float] | None = None) -> float:
    """Median seconds per call of ``fn()`` after one warm-up call (``torch.utils.benchmark`` blocked autorange).

    ``clock`` is the timer (default: the wall clock). ``time.thread_time`` counts only the calling thread's
    CPU time, which other busy processes barely disturb: use it for single-threaded CPU work on a shared
    machine (it misses time spent in other threads and on a GPU).
    """
    from torch.utils import benchmark

    check_float("min_run_time", min_run_time, 0.0, 10.0, lo_open=True)
    fn()  # warm-up: first calls pay for allocation and kernel selection
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, **({} if clock is None else {"timer": clock}))
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def time_many(fns: Mapping[str, Callable[[], object]], rounds: int = 3, min_run_time: float = 0.05,
              clock: Callable[[], float] | None = None) -> dict[str, float]:
    """Seconds per call of several functions, timed in interleaved rounds (A, B, C, A, B, C, ...).

    A change in machine load hits every function alike, and each result is its *fastest* round:
    other processes can only add time, so the least disturbed round best estimates the work's own cost.
    ``clock`` is passed to :func:`time_call`.
    """
    check_int("rounds", rounds, 1, 50)
    if not fns:
        raise ValueError("fns must name at least one function to time")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, min_run_time, clock))
    return {name: min(values) for name, values in samples.items()}


def time_fastest_calls(fns: Mapping[str, Callable[[], object]], rounds: int = 10, burst: int = 3,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """Seconds of the fastest single call of each function, in interleaved rounds (A A A, B B B, A A A, ...).

    In each round every function is called ``burst`` times in a row, so its data is back in the caches (as it
    is for a model that serves call after call), and the rounds interleave the functions so a change in load
    hits them all. On the CPU with one torch thread each call is timed by the CPU time of the calling thread:
    a busy machine takes turns away from a process but does not add to its CPU time, so even a call longer
    than the scheduler's time slice is measured as it would run on an idle core (wall-clock time instead,
    with several threads). On CUDA each call is timed by the wall clock between two synchronisations.
    """
    import time

    check_int("rounds", rounds, 1, 100_000)
    check_int("burst", burst, 1, 1000)
    device = torch.device(device)
    if not fns:
        raise ValueError("fns must name at least one function to time")
    if device.type == "cuda":
        clock, synchronize = time.perf_counter, torch.cuda.synchronize
    else:
        clock, synchronize = thread_clock(device) or time.perf_counter, lambda: None
    fastest = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(burst):
                synchronize()
                start = clock()
                fn()
                synchronize()
                fastest[name] = min(fastest[name], clock() - start)
    return fastest
