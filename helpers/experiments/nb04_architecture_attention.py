"""Notebook 04, section 1: what attention costs, counted, measured and timed.

Parallelism cannot be shown as speed on one CPU thread, so it is *measured as dependency depth*: an operation
recorder sees every tensor operation a layer dispatches and gives each result a depth, one more than its
deepest input. The deepest result is the critical path, the number of steps that must run one after another
however many processors there are. Attention's depth is the same at any length (every position is handled by
the same few matrix products); a recurrent layer's grows with the length, because each step waits for the
previous hidden state. Depth, unlike an operation count, does not depend on the implementation: a loop over
queries would dispatch T times as many operations at the same depth, and a fused recurrent kernel hides its
chain inside one call without removing it. The same recorder measures the largest tensor any operation
returns, which exposes the (T, T) score matrix of attention written out, and its absence in a fused kernel.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from helpers import exercises, plotting
from helpers.scratch import attention
from helpers.timing import thread_clock, time_many
from helpers.validation import check_int

GIB = 2.0**30
ACCELERATOR_GIB = 80.0  # the memory of one large data-centre accelerator (an 80 GB GPU), for scale
HEAD_DIM = 64           # features per head in the memory explorer, as in GPT-2 and most models since


class OperationRecorder(TorchDispatchMode):
    """Records every tensor operation run inside ``with OperationRecorder() as rec:``.

    ``rec.operations`` is the number of operations dispatched (views included); ``rec.depth`` the length of
    the longest chain of operations each of which needs the previous one's result (a tensor made outside
    has depth 0, a result one more than its deepest input); ``rec.largest_bytes`` the size of the largest
    new tensor any operation returned (views of existing tensors allocate nothing and are skipped).
    """

    def __init__(self) -> None:
        super().__init__()
        self.operations, self.depth, self.largest_bytes = 0, 0, 0
        self._depths: dict[int, int] = {}       # id(tensor) -> depth
        self._alive: list[torch.Tensor] = []    # keeps recorded tensors alive, so an id is never reused

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        self.operations += 1
        tensors_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        depth = 1 + max((self._depths.get(id(t), 0) for t in tensors_in), default=0)
        inputs = {t.untyped_storage().data_ptr() for t in tensors_in}
        for tensor in tree_flatten(result)[0]:
            if isinstance(tensor, torch.Tensor):
                self._depths[id(tensor)] = depth
                self._alive.append(tensor)
                if tensor.untyped_storage().data_ptr() not in inputs:                # not a view
                    self.largest_bytes = max(self.largest_bytes, tensor.untyped_storage().nbytes())
        self.depth = max(self.depth, depth)
        return result


def record(fn: Callable[[], object]) -> OperationRecorder:
    """Run ``fn()`` without gradients under an :class:`OperationRecorder` and return the recorder."""
    with torch.no_grad(), OperationRecorder() as recorder:
        fn()
    return recorder


@dataclass
class Layers:
    """One attention layer and one GRU layer of the same width, on one device."""

    attention: nn.Module
    gru: nn.Module
    width: int
    device: torch.device


def make_layers(width: int = 64, device: torch.device | str = "cpu", seed: int = 0) -> Layers:
    """A one-head :class:`MultiHeadSelfAttention` and an ``nn.GRU`` of ``width`` features, seeded."""
    check_int("width", width, 1, 4096)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    device = torch.device(device)
    return Layers(attention.MultiHeadSelfAttention(width, 1).to(device),
                  nn.GRU(width, width, batch_first=True).to(device), width, device)


def sequence(length: int, width: int, device: torch.device) -> torch.Tensor:
    """One random sequence (1, length, width), the same for a given length."""
    generator = torch.Generator().manual_seed(length)
    return torch.randn(1, length, width, generator=generator).to(device)


def dependency_depths(layers: Layers, lengths: Sequence[int]) -> list[dict]:
    """Dependency depth (critical path) and operations dispatched by one forward pass of each layer."""
    rows = []
    for length in lengths:
        x = sequence(check_int("length", length, 1, 65_536), layers.width, layers.device)
        attention_run, gru_run = record(lambda x=x: layers.attention(x)), record(lambda x=x: layers.gru(x))
        rows.append({"length": length, "attention depth": attention_run.depth, "GRU depth": gru_run.depth,
                     "attention ops": attention_run.operations, "GRU ops": gru_run.operations})
    return rows


def computations(layers: Layers, length: int) -> dict[str, Callable[[], object]]:
    """The three computations compared: attention written out, PyTorch's fused kernel, and the GRU layer.

    Attention inputs are (batch 1, heads 1, T, d): the four-dimensional layout that selects the fused kernel.
    """
    x = sequence(check_int("length", length, 2, 65_536), layers.width, layers.device).unsqueeze(1)  # (1, 1, T, d)
    return {"attention written out": lambda: attention.scaled_dot_product_attention(x, x, x),
            "fused attention (PyTorch)": lambda: functional.scaled_dot_product_attention(x, x, x),
            "GRU": lambda: layers.gru(x[0])}


def allocations(layers: Layers, lengths: Sequence[int]) -> dict[str, list[int]]:
    """Bytes of the largest new tensor any operation returns, per attention computation and sequence length.

    (The GRU is left out: recording its thousands of small operations one by one would take seconds.)
    """
    found: dict[str, list[int]] = {}
    for length in lengths:
        for name, fn in computations(layers, length).items():
            if name != "GRU":
                found.setdefault(name, []).append(record(fn).largest_bytes)
    return found


def attention_flops(length: int, width: int = 64) -> int:
    """Floating-point operations of attention written out, counted by PyTorch's FLOP counter (4 T^2 d)."""
    x = torch.zeros(1, 1, check_int("length", length, 1, 65_536), check_int("width", width, 1, 4096))
    with FlopCounterMode(display=False) as counter:
        attention.scaled_dot_product_attention(x, x, x)
    return int(counter.get_total_flops())


def timings(layers: Layers, lengths: Sequence[int], rounds: int = 3,
            min_run_time: float = 0.02) -> dict[str, list[float]]:
    """Seconds per forward pass of each computation, in interleaved rounds (fastest round kept), timed by
    the thread's CPU time on a CPU (see :func:`helpers.timing.thread_clock`)."""
    fns = {}
    for length in lengths:
        for name, fn in computations(layers, length).items():
            fns[(name, length)] = fn
    synchronise = torch.cuda.synchronize if layers.device.type == "cuda" else (lambda: None)

    def timed(fn):
        return lambda: (fn(), synchronise())

    with torch.no_grad():
        seconds = time_many({key: timed(fn) for key, fn in fns.items()}, rounds=rounds, min_run_time=min_run_time,
                            clock=thread_clock(layers.device))
    found: dict[str, list[float]] = {}
    for (name, _), value in seconds.items():
        found.setdefault(name, []).append(value)
    return found


def slope(lengths: Sequence[int], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) against log(length): 1 for linear growth, 2 for quadratic."""
    if len(lengths) != len(values) or len(lengths) < 2:
        raise ValueError(f"lengths and values must be equally long with at least 2 points, got "
                         f"{len(lengths)} and {len(values)}")
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def plot_cost(lengths: Sequence[int], seconds: dict[str, list[float]], largest: dict[str, list[int]]):
    """Time (left) and largest allocation (right) against sequence length, log-log, with slope guides."""
    fig, (left, right) = plotting.figure("What attention costs as sequences grow", "sequence length T (tokens)",
                                         "seconds per forward pass", ncols=2, figsize=(10.5, 3.9))
    right.set_ylabel("largest single allocation (bytes)")
    n = np.asarray(lengths, dtype=float)
    colours = dict(zip(seconds, plotting.PALETTE))
    for ax, values in ((left, seconds), (right, largest)):
        for name, ys in values.items():
            ax.loglog(n, ys, "o-", color=colours[name], label=name)
        anchor = 3 * max(values["attention written out"])            # guides run parallel, above the data
        ax.loglog(n, anchor * (n / n[-1]) ** 2, "k:", lw=1, label="guide: slope 2 (quadratic)")
        ax.loglog(n, anchor * (n / n[-1]), "k--", lw=1, alpha=0.5, label="guide: slope 1 (linear)")
        ax.set_xticks(n, [str(int(v)) for v in n])
        ax.minorticks_off()
    right.text(0.03, 0.97, "GRU not recorded", transform=right.transAxes, va="top", fontsize=8, color="#555555")
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center")
    return fig


def memory_explorer(log2_length: int = 12, layers: int = 12, heads: int = 12, bytes_per_value: int = 2):
    """Memory of the attention weights a training step keeps for backpropagation, written out vs fused.

    Written out, every layer stores h score matrices of T x T values; a fused kernel keeps O(T) per head
    (the output and one normaliser per query), here with ``HEAD_DIM`` features per head.
    """
    check_int("log2_length", log2_length, 6, 17)
    check_int("layers", layers, 1, 128)
    check_int("heads", heads, 1, 128)
    check_int("bytes_per_value", bytes_per_value, 1, 8)
    n = 2.0 ** np.arange(6, 18)
    written_out = n**2 * heads * layers * bytes_per_value / GIB
    fused = n * (HEAD_DIM + 1) * heads * layers * bytes_per_value / GIB
    length = 2**log2_length
    here = length**2 * heads * layers * bytes_per_value / GIB
    fig, ax = plotting.figure("Attention weights kept for backpropagation (one sequence)",
                              "sequence length T (tokens)", "memory (GiB)")
    ax.loglog(n, written_out, "o-", label="T x T weights, written out")
    ax.loglog(n, fused, "s-", label=f"fused kernel (output + normaliser, head size {HEAD_DIM})")
    ax.axhline(ACCELERATOR_GIB, color="black", ls=":", lw=1, label=f"{ACCELERATOR_GIB:.0f} GB accelerator")
    ax.plot([length], [here], "o", ms=12, mfc="none", mec="black", label=f"T = {length}")
    ax.set_ylim(min(fused.min(), 1e-6) / 2, max(written_out.max(), ACCELERATOR_GIB) * 2)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    numbers = {"sequence length T": length, "one T x T matrix (MiB)": length**2 * bytes_per_value / 2**20,
               "all layers and heads, written out (GiB)": here,
               "fused kernel (GiB)": length * (HEAD_DIM + 1) * heads * layers * bytes_per_value / GIB}
    if here > ACCELERATOR_GIB:
        numbers["note"] = (f"The written-out weights alone need {here:,.0f} GiB for one sequence: more than an "
                           f"{ACCELERATOR_GIB:.0f} GB accelerator holds. Fused kernels, shorter context or sparse "
                           "attention are the way out.")
    return fig, numbers


def check_causal_mask(fn: Callable[[int], torch.Tensor] | None) -> bool:
    """Exercise: ``fn(T)`` returns a (T, T) boolean mask, True where query i may attend to key j.

    Checked by using it in attention and comparing with ``is_causal=True`` of PyTorch's kernel.
    """
    for length in (1, 2, 5, 9):
        mask = exercises.attempt(fn, length, what="causal_mask(T)")
        if mask is exercises.NOT_ATTEMPTED:
            return False
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (length, length):
            return exercises.wrong(f"for T = {length} the mask must be a tensor of shape ({length}, {length}), "
                                   f"got {getattr(mask, 'shape', type(mask).__name__)}")
        if mask.dtype != torch.bool:
            return exercises.wrong(f"the mask must be boolean (True: may attend), got dtype {mask.dtype}",
                                   "compare with `>=` or use `torch.ones(T, T, dtype=torch.bool)`")
        generator = torch.Generator().manual_seed(length)
        q, k, v = (torch.randn(2, length, 8, generator=generator, dtype=torch.float64) for _ in range(3))
        ours = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        expected = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        if not torch.allclose(ours, expected, atol=1e-9):
            return exercises.wrong(f"with your mask at T = {length}, attention differs from is_causal=True "
                                   f"(largest difference {(ours - expected).abs().max().item():.3g})",
                                   "query i (row) may look at keys j <= i (columns): the lower triangle, "
                                   "diagonal included")
    return exercises.correct("your mask reproduces is_causal=True at T = 1, 2, 5 and 9: each position sees "
                             "itself and the past, never the future")


def future_leak(length: int = 8, width: int = 16, seed: int = 0) -> float:
    """Largest change in the causal outputs at positions < T/2 when every later token is replaced."""
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    check_int("length", length, 2, 4096)
    q, k, v = (torch.randn(1, length, width, generator=generator) for _ in range(3))
    half = length // 2
    k2, v2 = k.clone(), v.clone()
    k2[:, half:], v2[:, half:] = torch.randn(2, 1, length - half, width, generator=generator)
    before = attention.scaled_dot_product_attention(q, k, v, is_causal=True)
    after = attention.scaled_dot_product_attention(q, k2, v2, is_causal=True)
    return float((before[:, :half] - after[:, :half]).abs().max())


def agreement_with_torch(width: int = 64, heads: int = 4, length: int = 32, seed: int = 0) -> dict[str, float]:
    """Largest differences from PyTorch: attention (causal) vs ``scaled_dot_product_attention``, and
    :class:`MultiHeadSelfAttention` vs ``nn.MultiheadAttention`` with the same weights (float32)."""
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    q, k, v = (torch.randn(2, heads, length, width // heads) for _ in range(3))
    ours = attention.scaled_dot_product_attention(q, k, v, is_causal=True)
    fused = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    layer = attention.MultiHeadSelfAttention(width, heads)
    reference = nn.MultiheadAttention(width, heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(layer.qkv.weight)
        reference.in_proj_bias.copy_(layer.qkv.bias)
        reference.out_proj.weight.copy_(layer.out.weight)
        reference.out_proj.bias.copy_(layer.out.bias)
        x = torch.randn(2, length, width)
        mha_difference = (layer(x) - reference(x, x, x, need_weights=False)[0]).abs().max()
    return {"attention vs fused kernel (causal)": float((ours - fused).abs().max()),
            "multi-head vs nn.MultiheadAttention": float(mha_difference)}


def summary(lengths: Sequence[int], seconds: dict[str, list[float]], largest: dict[str, list[int]]) -> list[dict]:
    """Rows for a table: log-log slopes of time and memory, and the values at the longest length."""
    rows = []
    for name, times in seconds.items():
        recorded = name in largest
        rows.append({"computation": name, "time slope (log-log)": slope(lengths, times),
                     "memory slope (log-log)": slope(lengths, largest[name]) if recorded else "not recorded",
                     f"ms at T = {lengths[-1]}": 1e3 * times[-1],
                     f"largest allocation at T = {lengths[-1]}": bytes_label(largest[name][-1]) if recorded else "—"})
    return rows


def largest_tensor_ratio(largest: dict[str, list[int]], index: int) -> float:
    """Largest allocation of attention written out over the fused kernel's, at one length."""
    return largest["attention written out"][index] / largest["fused attention (PyTorch)"][index]


def crossover(lengths: Sequence[int], seconds: dict[str, list[float]],
              name: str = "attention written out") -> int | None:
    """The longest length at which attention ``name`` is still faster than the GRU (None: never)."""
    faster = [n for n, a, g in zip(lengths, seconds[name], seconds["GRU"]) if a < g]
    return max(faster) if faster else None


def crossover_sentence(lengths: Sequence[int], seconds: dict[str, list[float]], name: str) -> str:
    """Where attention ``name`` stops being faster than the GRU layer, in words."""
    point = crossover(lengths, seconds, name)
    if point is None:
        return f"{name}: slower than the GRU layer at every length timed ({lengths[0]} to {lengths[-1]} tokens)"
    if point == max(lengths) and all(a < g for a, g in zip(seconds[name], seconds["GRU"])):
        return f"{name}: faster than the GRU layer at every length timed, up to {point} tokens"
    return f"{name}: faster than the GRU layer up to {point} tokens, slower beyond"


def bytes_label(count: float) -> str:
    """A byte count in KiB, MiB or GiB."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    power = min(int(math.log(max(count, 1), 1024)), len(units) - 1)
    return f"{count / 1024**power:.3g} {units[power]}"
