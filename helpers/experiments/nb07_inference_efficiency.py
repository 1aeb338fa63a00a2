"""Notebook 07, part 1: quantization, distillation, pruning and request batching, measured.

The science lives in ``helpers.scratch`` (quantization, distillation, pruning, serving); this module
runs it: sweeps, timings, the explorers' pure functions and the exercise checkers.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from helpers import exercises
from helpers.plotting import figure
from helpers.progress import Report, share
from helpers.scratch import quantization, serving
from helpers.scratch.pruning import (
    global_magnitude_prune,
    linear_layers,
    make_pruning_permanent,
    matched_keep_fraction,
    prune_neurons,
    to_sparse,
)
from helpers.timing import time_fastest_calls
from helpers.train import evaluate, fit
from helpers.validation import check_choice, check_float, check_int

MAX_FEATURES = 16_384
TARGET_SERVICE_TIMES = 3    # the latency target: three times the time to serve one request alone


# ----------------------------------------------------------------------------- models and accuracy
def serving_mlp(in_features: int = 784, hidden: int = 1024, out_features: int = 10, depth: int = 2,
                seed: int = 0) -> nn.Sequential:
    """A plain ``Linear/ReLU`` stack (784-1024-1024-10 by default) in eval mode: speed depends on shapes only."""
    check_int("in_features", in_features, 1, MAX_FEATURES)
    check_int("hidden", hidden, 1, MAX_FEATURES)
    check_int("out_features", out_features, 1, MAX_FEATURES)
    check_int("depth", depth, 1, 16)
    widths = [in_features] + [hidden] * depth
    with torch.random.fork_rng():
        torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers).eval()


def model_device(model: nn.Module) -> torch.device:
    """Where a model's tensors live; the CPU for a model with none of its own (PyTorch's quantized models)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy on ``(x, y)`` in eval mode, computed where the model lives (mode restored after)."""
    device = model_device(model)
    return evaluate(model, x.to(device), y.to(device))[1]


def class_recall(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label: int) -> float:
    """Fraction of the examples of class ``label`` that ``model`` labels ``label``."""
    mask = y == check_int("label", label, 0, 100_000)
    if not mask.any():
        raise ValueError(f"y has no examples of class label={label}")
    return accuracy(model, x[mask], y[mask])


# ----------------------------------------------------------------------------- quantization
def flatten_class(logits: torch.Tensor, temperature: float, label: int) -> torch.Tensor:
    """Logits whose softmax at ``temperature`` gives every row the same probability of ``label`` (its mean over
    the rows), the other classes rescaled to keep their ratios: the same mass on ``label``, no information in it."""
    check_float("temperature", temperature, 0.0, 100.0, lo_open=True)
    check_int("label", label, 0, logits.shape[1] - 1)
    probs = torch.softmax(logits / temperature, dim=1)                        # (n, classes)
    mean = probs[:, label].mean()
    flat = probs * ((1 - mean) / (1 - probs[:, label])).unsqueeze(1)         # others keep their ratios
    flat[:, label] = mean
    return temperature * torch.log(flat)


def weight_error(model: nn.Module, bits: int, granularity: str) -> float:
    """Root-mean-square rounding error of all linear weights, relative to their own RMS."""
    weights = [layer.weight.detach() for layer in linear_layers(model)]
    errors = [quantization.dequantize(*quantization.quantize_symmetric(w, bits, granularity)) - w for w in weights]
    return float(torch.cat([e.flatten() for e in errors]).pow(2).mean().sqrt()
                 / torch.cat([w.flatten() for w in weights]).pow(2).mean().sqrt())


def rounding_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits_list: Sequence[int]
                   ) -> dict[str, dict[str, list[float]]]:
    """Relative weight error and test accuracy after rounding the weights to each bit width, both granularities."""
    bits_list = [check_int("bits", bits, 2, 8) for bits in bits_list]
    return {g: {"error": [weight_error(model, bits, g) for bits in bits_list],
                "accuracy": [accuracy(quantization.fake_quantize(model, bits, g), x, y) for bits in bits_list]}
            for g in quantization.GRANULARITIES}


def int8_instructions(cpuinfo: str = "/proc/cpuinfo") -> str:
    """Which int8 dot-product instructions this CPU advertises (VNNI, AMX), the ones that decide int8 speed."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return "int8 instructions: unknown (no /proc/cpuinfo)"
    found = [name for name in ("avx512_vnni", "avx_vnni", "amx_int8") if name in flags]
    return f"int8 instructions: {', '.join(found) if found else 'none of VNNI or AMX'}"


def int8_versions(model: nn.Module) -> dict[str, nn.Module]:
    """float32, our int8 layer (per channel), and the library's int8 per tensor (its default) and per channel."""
    return {"float32": model, "int8, from scratch": quantization.quantize_linears(model),
            "int8, library, per tensor": quantization.library_quantize_dynamic(model),
            "int8, library, per channel": quantization.library_quantize_dynamic(model, per_channel=True)}


@torch.no_grad()
def time_versions(versions: Mapping[str, nn.Module], batch_sizes: Sequence[int], in_features: int, rounds: int,
                  seed: int = 0) -> dict[int, dict[str, float]]:
    """Seconds per forward pass of each version at each batch size on the CPU: each version's fastest call
    over ``rounds`` interleaved rounds (:func:`helpers.timing.time_fastest_calls`)."""
    generator = torch.Generator().manual_seed(seed)
    times = {}
    for batch in [check_int("batch_size", b, 1, 4096) for b in batch_sizes]:
        x = torch.randn(batch, in_features, generator=generator)
        times[batch] = time_fastest_calls({name: (lambda m=m, x=x: m(x)) for name, m in versions.items()}, rounds)
    return times


def outlier_errors(n_tokens: int = 256, width: int = 64, outlier_channels: int = 2, outlier_size: float = 50.0,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """An int8 linear layer (int8 per-token activations, int8 per-channel weights) on Gaussian activations,
    with ``outlier_channels`` channels scaled up ``outlier_size`` times, and with SmoothQuant's rescaling.

    For each case: the relative rounding error of the *ordinary* channels' activations (in their original
    units), and the relative error of the layer's output against float32.
    """
    check_int("width", width, 2, 4096)
    check_int("outlier_channels", outlier_channels, 1, width - 1)
    check_float("outlier_size", outlier_size, 1.0, 1e4)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    clean = torch.randn(check_int("n_tokens", n_tokens, 1, 100_000), width, generator=generator)  # (tokens, in)
    weight = torch.randn(width, width, generator=generator) / width ** 0.5                         # (out, in)
    with_outliers = clean.clone()
    with_outliers[:, :outlier_channels] *= outlier_size
    smoothing = quantization.smooth_scales(with_outliers.abs().amax(dim=0), weight, alpha=0.5)      # (in,)
    ordinary = slice(outlier_channels, None)

    def errors(x: torch.Tensor, scales: torch.Tensor) -> dict[str, float]:
        x_codes, x_scale = quantization.quantize_rows(x / scales)                # x / s: (tokens, in)
        w_codes, w_scale = quantization.quantize_symmetric(weight * scales, 8, "per_channel")
        x_rounded = x_codes.float() * x_scale * scales                           # back in x's units
        output = (x_codes.float() @ w_codes.float().t()) * x_scale * w_scale.t()  # (tokens, out)
        exact = x @ weight.t()
        return {"ordinary channels": float((x_rounded - x)[:, ordinary].norm() / x[:, ordinary].norm()),
                "layer output": float((output - exact).norm() / exact.norm())}

    ones = torch.ones(width)
    return {"no outliers": errors(clean, ones), "outliers": errors(with_outliers, ones),
            "outliers, smoothed": errors(with_outliers, smoothing)}


def quantization_explorer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits: int = 8,
                          granularity: str = "per_channel"):
    """Explorer: every weight's rounding error at ``bits`` bits (both granularities) and the test accuracy."""
    bits = check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, quantization.GRANULARITIES)
    fig, ax = figure(f"Rounding the weights to {bits} bits", "rounding error (weight units)",
                     "number of weights (log scale)", figsize=(7.4, 3.8))
    errors = {}
    for g in quantization.GRANULARITIES:
        weights = [layer.weight.detach() for layer in linear_layers(model)]
        errors[g] = torch.cat([(quantization.dequantize(*quantization.quantize_symmetric(w, bits, g)) - w).flatten()
                               for w in weights]).cpu().numpy()
    edges = np.linspace(-np.abs(errors["per_tensor"]).max(), np.abs(errors["per_tensor"]).max(), 61)
    for g, style in zip(quantization.GRANULARITIES, ("-", "--")):
        ax.hist(errors[g], bins=edges, histtype="step", linestyle=style, linewidth=2.4 if g == granularity else 1.2,
                label=g.replace("_", "-") + (" (selected)" if g == granularity else ""))
    ax.set_yscale("log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    float_accuracy = accuracy(model, x, y)
    rounded = accuracy(quantization.fake_quantize(model, bits, granularity), x, y)
    numbers = {"test accuracy, float32": float_accuracy, "test accuracy, rounded": rounded,
               "relative weight error": weight_error(model, bits, granularity)}
    if rounded < float_accuracy - 0.05:
        numbers["note"] = (f"At {bits} bits ({granularity.replace('_', '-')}) rounding costs "
                           f"{float_accuracy - rounded:.2f} test accuracy.")
    return fig, numbers


# ----------------------------------------------------------------------------- pruning
def pruning_sweep(model: nn.Module, data, sparsities: Sequence[float], finetune_epochs: int = 10, lr: float = 1e-3,
                  seed: int = 0, progress: Report | None = None) -> dict[str, list[float]]:
    """Test accuracy at each global sparsity, right after pruning and after fine-tuning with the mask kept
    (progress to ``progress`` if given, else to the notebook cell's bar)."""
    check_int("finetune_epochs", finetune_epochs, 1, 1000)
    levels = [check_float("sparsity", s, 0.0, 1.0, hi_open=True) for s in sparsities]
    rows: dict[str, list[float]] = {"no fine-tuning": [], "fine-tuned": []}
    for index, sparsity in enumerate(levels):
        pruned = global_magnitude_prune(model, sparsity)
        rows["no fine-tuning"].append(accuracy(pruned, data.x_test, data.y_test))
        part = share(progress, index / len(levels), (index + 1) / len(levels))
        fit(pruned, data, epochs=finetune_epochs, lr=lr, seed=seed, progress=part)
        rows["fine-tuned"].append(accuracy(pruned, data.x_test, data.y_test))
    return rows


def pruned_versions(model: nn.Module, density: float = 0.1) -> dict[str, nn.Module]:
    """Dense; unstructured pruning to ``density`` kept dense or stored sparse; structured pruning to the same
    number of weights."""
    masked = make_pruning_permanent(global_magnitude_prune(model, 1.0 - density))
    return {"dense": model, "masked dense": masked, "torch.sparse": to_sparse(masked),
            "structured": prune_neurons(model, matched_keep_fraction(model, density))}


# ----------------------------------------------------------------------------- request batching
@torch.no_grad()
def batch_table(model: nn.Module, batch_sizes: Sequence[int], in_features: int, rounds: int, seed: int = 0
                ) -> dict[int, float]:
    """Seconds for one forward pass at each batch size: the fastest call over ``rounds`` interleaved rounds."""
    sizes = [check_int("batch_size", b, 1, 4096) for b in batch_sizes]
    generator = torch.Generator().manual_seed(seed)
    inputs = {b: torch.randn(b, in_features, generator=generator) for b in sizes}
    times = time_fastest_calls({str(b): (lambda x=inputs[b]: model(x)) for b in sizes}, rounds)
    return {b: times[str(b)] for b in sizes}


def capacity(table: Mapping[int, float], max_batch: int) -> float:
    """Requests per second a server can sustain with batches up to ``max_batch`` (the table interpolated)."""
    seconds_for = serving.latency_from_table(table)
    sizes = np.unique(np.clip([*table, max_batch], 1, max_batch))
    return float(max(size / seconds_for(size) for size in sizes))


def queue_grows(latencies: np.ndarray) -> bool:
    """Whether the last fifth of a stream waited (median) more than 2.5 times as long as the second fifth; the
    first fifth is skipped because every stream starts with an empty queue."""
    fifth = max(1, len(latencies) // 5)
    return bool(np.median(latencies[-fifth:]) > 2.5 * np.median(latencies[fifth:2 * fifth]))


SERVERS = {"one at a time": (1, 0.0), "batching, no wait": (None, 0.0), "batching with a wait": (None, None)}


def busy_fraction(table: Mapping[int, float], arrivals: np.ndarray, result: serving.ServingResult) -> float:
    """Share of the time from the first arrival to the last answer during which the worker computes."""
    seconds_for = serving.latency_from_table(table)
    busy = sum(seconds_for(size) for size in result.batch_sizes)
    return float(busy / (np.max(arrivals + result.latencies) - arrivals[0]))


def serve(table: Mapping[int, float], load: float, max_batch: int, max_wait: float, n_requests: int, seed: int
          ) -> dict[str, dict[str, float]]:
    """The three servers of :data:`SERVERS` on one Poisson stream at ``load`` x one-at-a-time capacity."""
    single = table[1]
    arrivals = serving.poisson_arrivals(check_float("load", load, 0.0, 100.0, lo_open=True) / single, n_requests, seed)
    rows = {}
    for name, (batch, wait) in SERVERS.items():
        batch, wait = batch or max_batch, max_wait if wait is None else wait
        result = serving.simulate_serving(table, arrivals, batch, wait)
        rows[name] = {"p50 (ms)": result.percentile(50) * 1e3, "p95 (ms)": result.percentile(95) * 1e3,
                      "within target": float(np.mean(result.latencies <= TARGET_SERVICE_TIMES * single)),
                      "mean batch": float(result.batch_sizes.mean()),
                      "passes per request": len(result.batch_sizes) / n_requests,
                      "busy fraction": busy_fraction(table, arrivals, result),
                      "load / peak capacity": load / single / capacity(table, batch)}
    return rows


def serving_sweep(table: Mapping[int, float], loads: Sequence[float], max_batch: int, max_wait: float,
                  n_requests: int, seed: int = 0) -> list[dict]:
    """One row per load and server: latency percentiles, share within the target, mean batch, forward passes
    per request, the worker's busy fraction, the arrival rate over the server's peak capacity (its throughput
    at its best batch size, from ``table``), and whether it is stable (that ratio below 1)."""
    rows = []
    for load in loads:
        for name, numbers in serve(table, load, max_batch, max_wait, n_requests, seed).items():
            rows.append({"load": load, "server": name, **numbers, "stable": numbers["load / peak capacity"] < 1})
    return rows


def wait_sweep(table: Mapping[int, float], load: float, max_batch: int, waits: Sequence[float], n_requests: int,
               seed: int = 0) -> dict[str, list[float]]:
    """The cost and the price of waiting, on one Poisson stream at ``load``: for each ``max_wait`` (in seconds)
    the worker's busy fraction, the share of requests within the latency target and the p95 latency (ms)."""
    single = table[1]
    arrivals = serving.poisson_arrivals(check_float("load", load, 0.0, 100.0, lo_open=True) / single, n_requests, seed)
    sweep: dict[str, list[float]] = {"busy fraction": [], "within target": [], "p95 (ms)": []}
    for wait in waits:
        result = serving.simulate_serving(table, arrivals, max_batch, check_float("max_wait", wait, 0.0, 3600.0))
        sweep["busy fraction"].append(busy_fraction(table, arrivals, result))
        sweep["within target"].append(float(np.mean(result.latencies <= TARGET_SERVICE_TIMES * single)))
        sweep["p95 (ms)"].append(result.percentile(95) * 1e3)
    return sweep


def serving_explorer(table: Mapping[int, float], load: float = 1.5, max_batch: int = 64, max_wait_ms: float = 0.0,
                     n_requests: int = 2000, seed: int = 0):
    """Explorer: latency distribution of one-at-a-time serving against dynamic batching at one load."""
    check_int("max_batch", max_batch, 1, 4096)
    max_wait = check_float("max_wait_ms", max_wait_ms, 0.0, 1000.0) / 1e3
    single = table[1]
    arrivals = serving.poisson_arrivals(check_float("load", load, 0.0, 100.0, lo_open=True) / single, n_requests, seed)
    results = {"one at a time": serving.simulate_serving(table, arrivals, 1, 0.0),
               f"batching (up to {max_batch}, wait {max_wait_ms:g} ms)":
                   serving.simulate_serving(table, arrivals, max_batch, max_wait)}
    fig, ax = figure(f"Latency at load {load:g}", "latency (ms, log scale)", "share of requests answered",
                     figsize=(7.6, 3.8))
    for (name, result), style in zip(results.items(), ("-", "--")):
        ax.plot(np.sort(result.latencies) * 1e3, np.arange(1, n_requests + 1) / n_requests, style, label=name)
    ax.axvline(TARGET_SERVICE_TIMES * single * 1e3, color="black", ls=":", label="latency target")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    one, batched = results.values()
    peak_share = {"one at a time": load, "batching": load / single / capacity(table, max_batch)}
    numbers: dict[str, object] = {
        "one at a time: p50 (ms)": one.percentile(50) * 1e3, "one at a time: p95 (ms)": one.percentile(95) * 1e3,
        "batching: p50 (ms)": batched.percentile(50) * 1e3, "batching: p95 (ms)": batched.percentile(95) * 1e3,
        "batching: mean batch size": float(batched.batch_sizes.mean()),
        "batching: share within target": float(np.mean(batched.latencies <= TARGET_SERVICE_TIMES * single)),
        "batching: busy fraction": busy_fraction(table, arrivals, batched)}
    unstable = [name for name, u in peak_share.items() if u >= 1]
    stalled = "batching" not in unstable and queue_grows(batched.latencies)
    notes = []
    if unstable:
        notes.append(f"Arrival rate above the peak capacity of {' and '.join(unstable)} (load / peak capacity "
                     f"{', '.join(f'{peak_share[n]:.2f}' for n in unstable)}): the queue grows without bound, "
                     "so its percentiles only grow with the length of the stream.")
    if stalled:
        notes.append("The batching server's queue kept growing during the stream: batches larger than the most "
                     "efficient size take longer than they save and can stall a server below its capacity.")
    if max_batch == 1 and max_wait == 0:
        notes.append("With batches of one and no wait, batching is one-at-a-time serving: the curves coincide.")
    if notes:
        numbers["note"] = " ".join(notes)
    return fig, numbers


# ----------------------------------------------------------------------------- the levers table
def levers_rows(quantization: tuple[float, float, float, float], distillation: tuple[float, float, float],
                pruning: tuple[float, float, float, float, float], batching: tuple[float, float, float],
                caching: tuple[float, int, float]) -> list[dict[str, str]]:
    """The guide's levers table filled with measured numbers.

    ``quantization``: size ratio, speed-up at batch 1 and at 256, accuracy change; ``distillation``: parameter
    ratio, accuracy change, recall of the never-seen class; ``pruning``: accuracy drops of the teacher and the
    compact model at 90%, speed-ups of masked dense, sparse and structured; ``batching``: capacity gain and the
    worker's busy fraction without and with a wait at load 1.5; ``caching``: speed-up, context length, GiB per
    4k-token sequence (7B-like).
    """
    size, speed_1, speed_256, quant_change = quantization
    shrink, distill_change, recall = distillation
    teacher_drop, compact_drop, masked, sparse, structured = pruning
    gain, busy_no_wait, busy_wait = batching
    cache_speed, length, gib = caching
    return [
        {"lever": "Quantization (int8, per channel)", "speed": f"{speed_1:.1f}x at batch 1, {speed_256:.1f}x at 256",
         "size": f"{size:.2f}x smaller", "accuracy": f"{quant_change:+.3f}",
         "trade-off seen here": "speed needs int8 kernels for this CPU; outlier activations need care"},
        {"lever": "Distillation", "speed": "a smaller dense model: fast anywhere",
         "size": f"{shrink:.0f}x fewer weights",
         "accuracy": f"{distill_change:+.3f} here, either sign across seeds; {recall:.0%} of a never-seen class",
         "trade-off seen here": "a second training run; inherits the teacher's errors"},
        {"lever": "Pruning, 90% unstructured", "speed": f"{masked:.1f}x dense kernel, {sparse:.1f}x sparse kernel",
         "size": "10x fewer non-zeros, if stored sparse",
         "accuracy": f"{-teacher_drop:+.3f} oversized, {-compact_drop:+.3f} compact",
         "trade-off seen here": "free only with spare capacity; speed needs sparse hardware"},
        {"lever": "Pruning, structured (same weights)", "speed": f"{structured:.1f}x", "size": "10x fewer weights",
         "accuracy": "needs fine-tuning", "trade-off seen here": "a coarser cut"},
        {"lever": "Batching", "speed": f"{gain:.1f}x sustainable capacity", "size": "none", "accuracy": "none",
         "trade-off seen here": f"no cost without a wait; a wait cut the worker's busy time ({busy_no_wait:.0%} to "
                                f"{busy_wait:.0%} at load 1.5) at a latency cost"},
        {"lever": "Caching (KV)", "speed": f"{cache_speed:.1f}x per token at {length} tokens",
         "size": f"+{gib:.0f} GiB per 4k-token sequence (7B-like, fp16)", "accuracy": "identical tokens",
         "trade-off seen here": "memory grows with context and batch; stale after any edit"},
        {"lever": "Retrieval", "speed": "not measured here", "size": "a smaller model can suffice",
         "accuracy": "depends on the index", "trade-off seen here": "index quality and freshness"},
    ]


# ----------------------------------------------------------------------------- exercises
def check_quantize_exercise(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None) -> bool:
    """Check a learner's ``fn(w) -> (q, scale)``: int8 codes in [-127, 127] with ``q * scale`` within ``scale / 2``."""
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(7)) * torch.linspace(0.01, 2.0, 16)[:, None]
    result = exercises.attempt(fn, w.clone(), what="my_quantize_int8")
    if result is exercises.NOT_ATTEMPTED:
        return False
    if not isinstance(result, tuple) or len(result) != 2:
        return exercises.wrong("return a pair (q, scale)")
    q, scale = result[0], torch.as_tensor(result[1], dtype=torch.float32)
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or q.shape != w.shape:
        return exercises.wrong(f"q must be a torch.int8 tensor of shape {tuple(w.shape)}",
                               "round first, then convert with .to(torch.int8)")
    if int(q.abs().max()) > 127 or not bool((scale > 0).all()):
        return exercises.wrong("codes must lie in [-127, 127] and every scale must be positive",
                               "scale = max|w| / 127, then clamp the rounded codes")
    error = (q.float() * scale - w).abs()
    if not bool((error <= scale.expand_as(w) / 2 + 1e-6).all()):
        return exercises.wrong(f"dequantized weights miss by up to {float(error.max()):.4g}, more than half a step",
                               "round to the nearest code with torch.round (casting to int8 truncates)")
    kind = "per-channel" if scale.numel() > 1 else "per-tensor"
    return exercises.correct(f"{kind} int8 quantization, worst error {float(error.max()):.4g} <= scale / 2 everywhere.")
