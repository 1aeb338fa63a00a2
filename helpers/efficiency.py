"""Making inference cheaper, measured: timing, int8 quantization, distillation, pruning, batching.

Everything here is small enough to read.  Timings use ``torch.utils.benchmark`` (warm-up, then
the median of repeated blocks) and are meant to be compared as ratios within one run: absolute
times on a shared machine move with the load, ratios much less.
"""
from __future__ import annotations

import copy
import io
import math
import platform
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from helpers.validation import check_choice, check_float, check_int

GRANULARITIES = ("per_tensor", "per_channel")
MAX_FEATURES = 16_384


# ----------------------------------------------------------------------------- timing and size
def device_note(device: torch.device | str = "cpu") -> str:
    """One line naming what a timing ran on (device, CPU threads, torch version)."""
    device = torch.device(device)
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"
    return f"timed on {device.type} ({what}), torch {torch.__version__}"


def time_call(fn: Callable[[], object], min_run_time: float = 0.1) -> float:
    """Median seconds per call of ``fn()`` after warm-up (``torch.utils.benchmark`` blocked autorange)."""
    from torch.utils import benchmark

    check_float("min_run_time", min_run_time, 0.0, 10.0, lo_open=True)
    fn()  # warm-up: first calls pay for allocation and kernel selection
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def time_many(fns: Mapping[str, Callable[[], object]], rounds: int = 3, min_run_time: float = 0.05) -> dict[str, float]:
    """Seconds per call of several functions, timed in interleaved rounds.

    Each round gives every function a median of repeated blocks (:func:`time_call`); rounds are
    interleaved (A, B, C, A, B, C, ...) so a change in machine load hits all of them, and the
    result for each is its *fastest* round: other processes can only add time, so the least
    disturbed round is the best estimate of the computation's own cost.
    """
    check_int("rounds", rounds, 1, 50)
    if not fns:
        raise ValueError("fns must name at least one function to time")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, min_run_time))
    return {name: float(min(v)) for name, v in samples.items()}


def serialized_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint of the model would weigh."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def serving_mlp(in_features: int = 784, hidden: int = 1024, out_features: int = 10, depth: int = 2,
                seed: int = 0) -> nn.Sequential:
    """A plain ``Linear/ReLU`` stack (default 784-1024-1024-10) in eval mode, for timing and pruning."""
    check_int("in_features", in_features, 1, MAX_FEATURES)
    check_int("hidden", hidden, 1, MAX_FEATURES)
    check_int("out_features", out_features, 1, MAX_FEATURES)
    check_int("depth", depth, 1, 16)
    check_int("seed", seed, 0, 2**32 - 1)
    widths = [in_features] + [hidden] * depth
    layers: list[nn.Module] = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers).eval()


def as_sequential(model: nn.Module) -> nn.Sequential:
    """A plain ``nn.Sequential`` copy of a :class:`helpers.models.MLP` (no norm, residual or dropout)."""
    if isinstance(model, nn.Sequential):
        return copy.deepcopy(model)
    blocks = getattr(model, "blocks", None)
    config = getattr(model, "config", {})
    if blocks is None or config.get("norm") or config.get("residual") or config.get("dropout"):
        raise ValueError("model must be an nn.Sequential or a helpers.models.MLP without norm, residual or dropout")
    layers: list[nn.Module] = []
    for block in blocks:
        layers += [copy.deepcopy(block.linear), copy.deepcopy(block.act)]
    layers.append(copy.deepcopy(model.head))
    return nn.Sequential(*layers)


@torch.no_grad()
def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode, mode restored)."""
    was = model.training
    model.eval()
    acc = (model(x).argmax(-1) == y).float().mean().item()
    model.train(was)
    return acc


# ----------------------------------------------------------------------------- int8 from scratch
def quantize_symmetric(w: torch.Tensor, bits: int = 8, granularity: str = "per_channel"
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric linear quantization of a 2-D weight: ``q = round(w / scale)`` clipped to ``±(2^(b-1) - 1)``.

    ``per_tensor`` uses one scale ``max|w| / qmax``; ``per_channel`` one per output row, so a row of
    small weights is not forced onto a grid sized for the largest row.  Returns ``(q, scale)``
    with ``q`` as int8 and ``scale`` of shape ``(rows, 1)`` (per channel) or ``()`` (per tensor).
    """
    check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"w must be a 2-D floating-point tensor, got shape {tuple(w.shape)} and {w.dtype}")
    qmax = 2 ** (bits - 1) - 1
    peak = w.abs().amax(dim=1, keepdim=True) if granularity == "per_channel" else w.abs().amax()
    scale = peak.clamp_min(1e-12) / qmax
    q = torch.clamp(torch.round(w / scale), -qmax, qmax).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Back to float: ``q * scale``.  Each entry is within ``scale / 2`` of the original weight."""
    return q.float() * scale


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-row int8 quantization of activations: one scale per example, computed on the fly."""
    if x.dim() != 2:
        raise ValueError(f"x must have shape (batch, features), got {tuple(x.shape)}")
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return torch.clamp(torch.round(x / scale), -127, 127).to(torch.int8), scale


def int_mm_padding(m: int, k: int, n: int, device: torch.device | str = "cpu") -> tuple[int, int, int]:
    """Padded sizes ``(m, k, n)`` that ``torch._int_mm`` accepts on ``device``.

    On CUDA the kernel needs ``m > 16`` and ``m``, ``k``, ``n`` multiples of 8 (cuBLASLt refused
    m = 359 on an H200 with torch 2.11); the CPU kernel (checked on torch 2.13) takes any sizes,
    so nothing is padded there.
    """
    if torch.device(device).type != "cuda":
        return m, k, n
    up8 = lambda v: -(-v // 8) * 8  # noqa: E731
    return up8(max(m, 17)), up8(k), up8(n)


def int8_matmul(a: torch.Tensor, b: torch.Tensor, force_pad: bool = False) -> torch.Tensor:
    """``a @ b`` for int8 ``a (m, k)`` and ``b (k, n)`` with int32 accumulation via ``torch._int_mm``.

    Pads with zeros where the kernel's shape rules require it (``force_pad`` pads as CUDA would,
    for testing) and slices the result back, so any shapes work.
    """
    if a.dtype != torch.int8 or b.dtype != torch.int8 or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b must be int8 matrices (m, k) and (k, n), got {tuple(a.shape)} {a.dtype} "
                         f"and {tuple(b.shape)} {b.dtype}")
    m, k = a.shape
    n = b.shape[1]
    pm, pk, pn = int_mm_padding(m, k, n, "cuda" if force_pad else a.device)
    if (pm, pk, pn) != (m, k, n):
        a = F.pad(a, (0, pk - k, 0, pm - m))
        b = F.pad(b, (0, pn - n, 0, pk - k))
    if b.is_cuda:
        b = b.t().contiguous().t()  # cuBLASLt's int8 kernel wants the right operand column-major
    return torch._int_mm(a, b)[:m, :n]


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (symmetric, per channel or per tensor) and int8 activations.

    Forward: quantize each input row on the fly, multiply in int8 with int32 accumulation
    (``torch._int_mm``), then rescale by ``x_scale * w_scale`` and add the float bias.
    """

    def __init__(self, linear: nn.Linear, granularity: str = "per_channel") -> None:
        super().__init__()
        q, scale = quantize_symmetric(linear.weight.detach(), 8, granularity)
        self.in_features, self.out_features, self.granularity = linear.in_features, linear.out_features, granularity
        self.register_buffer("weight_t", q.t().contiguous())            # (in, out) int8, ready for x @ W^T
        self.register_buffer("scale", scale.reshape(1, -1) if scale.dim() else scale.reshape(1, 1))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, x_scale = quantize_rows(x.flatten(1))
        out = int8_matmul(xq, self.weight_t).float() * (x_scale * self.scale)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.granularity}"


def quantize_model_int8(model: nn.Module, granularity: str = "per_channel") -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by :class:`Int8Linear`."""
    check_choice("granularity", granularity, GRANULARITIES)
    model = as_sequential(model) if not isinstance(model, nn.Sequential) and hasattr(model, "blocks") \
        else copy.deepcopy(model)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear(child.float(), granularity))
        else:
            setattr(model, name, quantize_model_int8(child, granularity) if any(
                isinstance(m, nn.Linear) for m in child.modules()) else child)
    return model.eval()


def fake_quantize(model: nn.Module, bits: int = 8, granularity: str = "per_channel") -> nn.Module:
    """A float copy of ``model`` whose ``nn.Linear`` weights are quantized then dequantized.

    It computes in float, so it isolates the *accuracy* effect of rounding the weights.
    """
    check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.copy_(dequantize(*quantize_symmetric(module.weight, bits, granularity)))
    return model


def weight_errors(model: nn.Module, bits: int = 8, granularity: str = "per_channel") -> torch.Tensor:
    """All ``nn.Linear`` weights' quantization errors ``dequantize(quantize(w)) - w``, flattened."""
    check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    errors = [dequantize(*quantize_symmetric(m.weight.detach(), bits, granularity)) - m.weight.detach()
              for m in model.modules() if isinstance(m, nn.Linear)]
    if not errors:
        raise ValueError("model must contain at least one nn.Linear")
    return torch.cat([e.flatten() for e in errors])


QUANT_DEPRECATION = re.escape("torch.ao.quantization is deprecated")
QTENSOR_DEPRECATION = re.escape("torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor")


def library_quantize_dynamic(model: nn.Module, explain: bool = True) -> nn.Module:
    """``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (int8 weights, dynamic activations).

    PyTorch 2.13 warns that ``torch.ao.quantization`` (and the quantized-tensor constructors it
    uses inside) is deprecated: the maintained successor is ``torchao`` (``torchao.quantization.
    quantize_`` with an int8 dynamic-activation config).  The eager API still works and ships fast
    CPU kernels (fbgemm/onednn), so we filter exactly those two warnings, only during this call,
    and print one line saying so instead of hiding them silently.
    """
    model = as_sequential(model) if not isinstance(model, nn.Sequential) and hasattr(model, "blocks") \
        else copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=QUANT_DEPRECATION, category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=QTENSOR_DEPRECATION, category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.Linear}, dtype=torch.qint8)
    if explain:
        print("note: filtered torch.ao.quantization's DeprecationWarning (successor: torchao's quantize_ API); "
              "quantize_dynamic itself still works in torch", torch.__version__)
    return quantized


# ----------------------------------------------------------------------------- distillation
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015): ``alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y)``.

    The soft term's gradient scales like ``1/T^2``, so multiplying by ``T^2`` keeps the two terms'
    relative weight the same whatever the temperature.  ``labels=None`` requires ``alpha=1``.
    """
    temperature = check_float("temperature", temperature, 0.0, 100.0, lo_open=True)
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student_logits and teacher_logits must share a (n, classes) shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.log_softmax(teacher_logits / temperature, dim=-1), log_target=True,
                    reduction="batchmean") * temperature ** 2
    if alpha == 1.0:
        return soft
    if labels is None:
        raise ValueError("labels must be given when alpha < 1 (the hard-label term needs them)")
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def train_student(student: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                  temperature: float = 4.0, alpha: float = 0.9, epochs: int = 60, lr: float = 3e-3,
                  batch_size: int = 128, seed: int = 0) -> list[float]:
    """Train ``student`` with Adam on hard labels (``teacher_logits=None``) or by distillation.

    ``helpers.train.fit`` expects integer labels only, so this small loop carries the teacher's
    logits alongside each mini-batch.  Returns the mean training loss of each epoch.
    """
    check_int("epochs", epochs, 1, 10_000)
    check_int("batch_size", batch_size, 1, 1_000_000)
    check_float("lr", lr, 0.0, 10.0, lo_open=True)
    if len(x) != len(y) or (teacher_logits is not None and len(teacher_logits) != len(x)):
        raise ValueError("x, y and teacher_logits must have the same number of rows")
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(x), generator=gen).to(x.device), 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            logits = student(x[idx])
            loss = (F.cross_entropy(logits, y[idx]) if teacher_logits is None else
                    distillation_loss(logits, teacher_logits[idx], y[idx], temperature, alpha))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    student.eval()
    return losses


def without_class(x: torch.Tensor, y: torch.Tensor, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``(x, y)`` whose label is not ``cls`` (a transfer set with one class removed)."""
    keep = y != check_int("cls", cls, 0, 100_000)
    return x[keep], y[keep]


@torch.no_grad()
def class_recall(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cls: int) -> float:
    """Fraction of the examples of class ``cls`` that ``model`` labels ``cls``."""
    mask = y == check_int("cls", cls, 0, 100_000)
    if not mask.any():
        raise ValueError(f"y has no examples of class cls={cls}")
    return accuracy_of(model, x[mask], y[mask])


# ----------------------------------------------------------------------------- pruning
def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """Every ``nn.Linear`` of ``model`` in order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def global_magnitude_prune(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude ``sparsity`` fraction of all Linear weights zeroed.

    Uses ``torch.nn.utils.prune.global_unstructured``: one threshold over all layers together, a
    mask stored beside each weight (``weight_orig * weight_mask``), so fine-tuning keeps pruned
    weights at zero.  Call :func:`make_pruning_permanent` to fold the masks in.
    """
    from torch.nn.utils import prune

    check_float("sparsity", sparsity, 0.0, 1.0, hi_open=True)
    model = copy.deepcopy(model)
    params = [(m, "weight") for m in linear_layers(model)]
    if not params:
        raise ValueError("model must contain at least one nn.Linear")
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return model


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    """Fold pruning masks into plain weights (in place) and return the model."""
    from torch.nn.utils import prune

    for m in linear_layers(model):
        if prune.is_pruned(m):
            prune.remove(m, "weight")
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all ``nn.Linear`` weights."""
    weights = [m.weight.detach() for m in linear_layers(model)]
    return sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights)


def prune_neurons(model: nn.Module, keep_fraction: float) -> nn.Sequential:
    """Structured pruning: keep the ``keep_fraction`` of each hidden layer's neurons with the largest
    incoming-weight norm and rebuild *smaller* ``nn.Linear`` layers (rows here, columns in the next).

    Works on a ``Linear/activation`` stack (``nn.Sequential`` or a plain :class:`helpers.models.MLP`).
    The result is dense and genuinely smaller, so any hardware runs it faster.
    """
    keep_fraction = check_float("keep_fraction", keep_fraction, 0.0, 1.0, lo_open=True)
    seq = make_pruning_permanent(as_sequential(model))
    layers = list(seq)
    linear_idx = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if len(linear_idx) < 2:
        raise ValueError("model must have at least two nn.Linear layers (one hidden layer) to remove neurons")
    with torch.no_grad():
        for i, j in zip(linear_idx[:-1], linear_idx[1:]):
            cur, nxt = layers[i], layers[j]
            n_keep = max(1, int(round(cur.out_features * keep_fraction)))
            keep = cur.weight.norm(dim=1).topk(n_keep).indices.sort().values
            small = nn.Linear(cur.in_features, n_keep, bias=cur.bias is not None,
                              device=cur.weight.device, dtype=cur.weight.dtype)
            small.weight.copy_(cur.weight[keep])
            if cur.bias is not None:
                small.bias.copy_(cur.bias[keep])
            narrower = nn.Linear(n_keep, nxt.out_features, bias=nxt.bias is not None,
                                 device=nxt.weight.device, dtype=nxt.weight.dtype)
            narrower.weight.copy_(nxt.weight[:, keep])
            if nxt.bias is not None:
                narrower.bias.copy_(nxt.bias)
            layers[i], layers[j] = small, narrower
    return nn.Sequential(*layers).train(model.training)


class SparseLinear(nn.Module):
    """A linear layer whose weight is stored as a ``torch.sparse`` CSR matrix (zeros not stored)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch flags CSR support as "beta"; the kernels used here are stable
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (self.weight @ x.t()).t()
        return out if self.bias is None else out + self.bias


def to_sparse(model: nn.Module) -> nn.Sequential:
    """A copy of a ``Linear/activation`` stack whose Linear layers use sparse CSR weights."""
    seq = make_pruning_permanent(as_sequential(model))
    return nn.Sequential(*[SparseLinear(m) if isinstance(m, nn.Linear) else m for m in seq]).eval()


# ----------------------------------------------------------------------------- batching and serving
@torch.no_grad()
def batch_latencies(model: nn.Module, batch_sizes: Sequence[int], in_features: int, rounds: int = 2,
                    min_run_time: float = 0.05, seed: int = 0) -> dict[int, float]:
    """Median seconds for one forward pass at each batch size (interleaved rounds, after warm-up)."""
    check_int("in_features", in_features, 1, MAX_FEATURES)
    sizes = [check_int("batch_size", b, 1, 4096) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes must name at least one batch size")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    inputs = {b: torch.randn(b, in_features, generator=gen).to(device) for b in sizes}
    times = time_many({str(b): (lambda x=inputs[b]: model(x)) for b in sizes}, rounds, min_run_time)
    return {b: times[str(b)] for b in sizes}


def latency_fn(table: Mapping[int, float]) -> Callable[[np.ndarray], np.ndarray]:
    """Seconds to serve a batch of any size, interpolated linearly between measured batch sizes."""
    if not table:
        raise ValueError("table must hold at least one measured batch size")
    sizes = np.array(sorted(table), dtype=float)
    secs = np.array([table[int(b)] for b in sizes])
    return lambda b: np.interp(np.asarray(b, dtype=float), sizes, secs)


@dataclass
class ServingResult:
    """One simulated run of a server: each request's latency and the batches it formed."""

    latencies: np.ndarray      # seconds from arrival to answer, per request
    batch_sizes: np.ndarray    # size of each batch served
    duration: float            # seconds from first arrival to last answer

    @property
    def throughput(self) -> float:
        """Requests answered per second."""
        return len(self.latencies) / self.duration

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of latency, in seconds."""
        return float(np.percentile(self.latencies, check_float("q", q, 0.0, 100.0)))


def poisson_arrivals(rate: float, n_requests: int, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds) of a Poisson stream: exponential gaps with mean ``1 / rate``."""
    check_float("rate", rate, 0.0, 1e9, lo_open=True)
    check_int("n_requests", n_requests, 1, 1_000_000)
    rng = np.random.default_rng(check_int("seed", seed, 0, 2**32 - 1))
    return np.cumsum(rng.exponential(1.0 / rate, n_requests))


def simulate_serving(latency: Callable[[np.ndarray], np.ndarray] | Mapping[int, float], arrivals: np.ndarray,
                     max_batch: int = 1, max_wait: float = 0.0) -> ServingResult:
    """Serve ``arrivals`` with one worker that batches dynamically; time is computed, never slept.

    When the worker is free and a request waits, it closes a batch as soon as ``max_batch``
    requests are queued or the oldest has waited ``max_wait`` seconds (whichever is first; if the
    worker was busy longer, it takes what queued meanwhile), then runs it for ``latency(size)``
    seconds.  ``max_batch=1`` is the one-request-at-a-time server.
    """
    check_int("max_batch", max_batch, 1, 4096)
    check_float("max_wait", max_wait, 0.0, 3600.0)
    lat = latency_fn(latency) if isinstance(latency, Mapping) else latency
    arrivals = np.asarray(arrivals, dtype=float)
    if arrivals.ndim != 1 or len(arrivals) == 0 or np.any(np.diff(arrivals) < 0):
        raise ValueError("arrivals must be a non-empty, sorted 1-D array of times")
    n, i, free_at = len(arrivals), 0, -math.inf
    latencies, sizes = np.empty(n), []
    while i < n:
        fills = arrivals[i + max_batch - 1] if i + max_batch - 1 < n else math.inf
        close = max(free_at, arrivals[i], min(arrivals[i] + max_wait, fills))
        end = min(int(np.searchsorted(arrivals, close, side="right")), i + max_batch)
        finish = close + float(lat(end - i))
        latencies[i:end] = finish - arrivals[i:end]
        sizes.append(end - i)
        free_at, i = finish, end
    return ServingResult(latencies, np.array(sizes), free_at - arrivals[0])


def serving_sweep(table: Mapping[int, float], rates: Sequence[float], n_requests: int = 2000, max_batch: int = 32,
                  max_wait: float = 0.002, seed: int = 0) -> list[dict[str, float]]:
    """p50/p95 latency and throughput of one-at-a-time and dynamic batching at each arrival rate."""
    rows = []
    for rate in rates:
        arrivals = poisson_arrivals(rate, n_requests, seed)
        single = simulate_serving(table, arrivals, 1, 0.0)
        batched = simulate_serving(table, arrivals, max_batch, max_wait)
        rows.append({"rate": float(rate),
                     "single_p50": single.percentile(50), "single_p95": single.percentile(95),
                     "single_throughput": single.throughput,
                     "batched_p50": batched.percentile(50), "batched_p95": batched.percentile(95),
                     "batched_throughput": batched.throughput,
                     "mean_batch": float(batched.batch_sizes.mean())})
    return rows


# ----------------------------------------------------------------------------- sweeps
def rounding_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits_list: Sequence[int] = range(2, 9)
                   ) -> dict[str, dict[str, list[float]]]:
    """Relative RMS weight error and accuracy on ``(x, y)`` after rounding weights to each bit width."""
    bits_list = [check_int("bits", b, 2, 8) for b in bits_list]
    weight_rms = torch.cat([m.weight.detach().flatten() for m in linear_layers(model)]).pow(2).mean().sqrt()
    rows: dict[str, dict[str, list[float]]] = {g: {"error": [], "accuracy": []} for g in GRANULARITIES}
    for g in GRANULARITIES:
        for bits in bits_list:
            rows[g]["error"].append((weight_errors(model, bits, g).pow(2).mean().sqrt() / weight_rms).item())
            rows[g]["accuracy"].append(accuracy_of(fake_quantize(model, bits, g), x, y))
    return rows


def pruning_sweep(model: nn.Module, data, sparsities: Sequence[float], finetune_epochs: int = 10,
                  lr: float = 1e-3, seed: int = 0) -> dict[str, list[float]]:
    """Test accuracy at each global sparsity, right after pruning and after fine-tuning with the mask kept."""
    from helpers.train import fit

    check_int("finetune_epochs", finetune_epochs, 1, 1000)
    levels = [check_float("sparsity", s, 0.0, 1.0, hi_open=True) for s in sparsities]
    rows: dict[str, list[float]] = {"no fine-tuning": [], "fine-tuned": []}
    for sparsity in levels:
        pruned = global_magnitude_prune(model, sparsity)
        rows["no fine-tuning"].append(accuracy_of(pruned, data.x_test, data.y_test))
        fit(pruned, data, epochs=finetune_epochs, lr=lr, seed=seed, progress=False)
        rows["fine-tuned"].append(accuracy_of(pruned, data.x_test, data.y_test))
    return rows


# ----------------------------------------------------------------------------- explorers
def quantization_explorer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits: int = 8,
                          granularity: str = "per_channel"):
    """Explorer: weight-error histogram and accuracy after rounding weights to ``bits`` bits."""
    from helpers.plotting import figure

    bits = check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    errors = {g: weight_errors(model, bits, g).cpu().numpy() for g in GRANULARITIES}
    fig, ax = figure(f"Weight rounding error at {bits} bits", "dequantized - original weight (weight units)",
                     "number of weights (log scale)")
    edges = np.linspace(-max(np.abs(e).max() for e in errors.values()), max(np.abs(e).max() for e in errors.values()), 61)
    for g in GRANULARITIES:
        ax.hist(errors[g], bins=edges, alpha=0.9 if g == granularity else 0.35, histtype="stepfilled" if g == granularity
                else "step", label=g.replace("_", "-") + (" (selected)" if g == granularity else ""))
    ax.set_yscale("log")
    ax.legend()
    return fig, {"accuracy (float)": accuracy_of(model, x, y),
                 "accuracy (quantized)": accuracy_of(fake_quantize(model, bits, granularity), x, y),
                 "mean |error|": float(np.abs(errors[granularity]).mean()),
                 "mean |error|, other granularity": float(np.abs(errors[[g for g in GRANULARITIES
                                                                          if g != granularity][0]]).mean())}


def serving_explorer(table: Mapping[int, float], rate_per_ms: float = 2.0, max_batch: int = 32,
                     max_wait_ms: float = 2.0, n_requests: int = 2000, seed: int = 0):
    """Explorer: latency distribution and throughput of one-at-a-time vs dynamic batching."""
    from helpers.plotting import figure

    rate = check_float("rate_per_ms", rate_per_ms, 0.0, 1000.0, lo_open=True) * 1000
    max_wait_ms = check_float("max_wait_ms", max_wait_ms, 0.0, 1000.0)
    arrivals = poisson_arrivals(rate, n_requests, seed)
    single = simulate_serving(table, arrivals, 1, 0.0)
    batched = simulate_serving(table, arrivals, max_batch, max_wait_ms / 1000)
    fig, ax = figure(f"Latency at {rate_per_ms:g} requests/ms", "latency (ms, log scale)", "number of requests")
    both = np.concatenate([single.latencies, batched.latencies]) * 1e3
    edges = np.geomspace(max(both.min(), 1e-3), both.max() * 1.01, 50)
    ax.hist(single.latencies * 1e3, bins=edges, alpha=0.5, label="one at a time")
    ax.hist(batched.latencies * 1e3, bins=edges, alpha=0.5, label=f"dynamic batching (<= {max_batch}, {max_wait_ms:g} ms)")
    ax.set_xscale("log")
    ax.legend()
    return fig, {"one at a time: p50 (ms)": single.percentile(50) * 1e3,
                 "one at a time: p95 (ms)": single.percentile(95) * 1e3,
                 "one at a time: throughput (req/ms)": single.throughput / 1e3,
                 "batched: p50 (ms)": batched.percentile(50) * 1e3,
                 "batched: p95 (ms)": batched.percentile(95) * 1e3,
                 "batched: throughput (req/ms)": batched.throughput / 1e3,
                 "batched: mean batch size": float(batched.batch_sizes.mean())}


def levers_table(quant_size: float, quant_speed_1: float, quant_speed_256: float, quant_acc: float,
                 distill_size: float, distill_acc: float, hard_acc: float, prune_acc: float,
                 masked_speed: float, sparse_speed: float, struct_speed: float, struct_acc: float,
                 batch_gain: float, batch_cost: float, cache_speed: float, cache_length: int,
                 cache_gib: float) -> str:
    """The guide's levers table as Markdown, filled with measured ratios (speed/size as 'x', accuracy as change)."""
    rows = [
        {"lever": "Quantization (int8, dynamic)", "speed": f"{quant_speed_1:.1f}x at batch 1, {quant_speed_256:.1f}x at 256",
         "size": f"{quant_size:.2f}x smaller", "accuracy": f"{quant_acc:+.3f}",
         "trade-off seen here": "needs a fast int8 kernel: our unfused layer gained little at batch 1"},
        {"lever": "Distillation", "speed": "smaller dense model: fast on any hardware",
         "size": f"{distill_size:.0f}x fewer parameters", "accuracy": f"{distill_acc:+.3f} (hard labels {hard_acc:+.3f})",
         "trade-off seen here": "a second training run; inherits the teacher's errors"},
        {"lever": "Pruning, unstructured 90%", "speed": f"{masked_speed:.1f}x dense kernel, {sparse_speed:.1f}x sparse",
         "size": "10x fewer non-zeros (if stored sparse)", "accuracy": f"{prune_acc:+.3f} after fine-tuning",
         "trade-off seen here": "speed-up depends on hardware and kernels"},
        {"lever": "Pruning, structured (same 10%)", "speed": f"{struct_speed:.1f}x", "size": "10x fewer weights",
         "accuracy": f"{struct_acc:+.3f} after fine-tuning", "trade-off seen here": "coarser cut, needs fine-tuning"},
        {"lever": "Batching (dynamic)", "speed": f"{batch_gain:.1f}x throughput at load 1.5", "size": "none",
         "accuracy": "none", "trade-off seen here": f"median latency x{batch_cost:.1f} at load 0.25"},
        {"lever": "Caching (KV)", "speed": f"{cache_speed:.1f}x per token at n = {cache_length}",
         "size": f"+{cache_gib:.0f} GiB per 4k-token sequence (7B-like, fp16)", "accuracy": "identical tokens",
         "trade-off seen here": "memory grows with context and batch"},
        {"lever": "Retrieval", "speed": "not measured here", "size": "a smaller model can suffice",
         "accuracy": "depends on the index", "trade-off seen here": "index quality and freshness"},
    ]
    return levers_markdown(rows)


def levers_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """A Markdown table of levers: each row maps column name to text (same columns in every row)."""
    if not rows:
        raise ValueError("rows must hold at least one lever")
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- exercises
def _not_attempted(what: str) -> bool:
    print(f"Not attempted yet: {what}")
    return False


def check_quantize_exercise(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Check a learner's int8 quantizer: ``fn(w) -> (q, scale)`` with ``q * scale`` within ``scale/2`` of ``w``."""
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(7)) * torch.linspace(0.01, 2.0, 16)[:, None]
    try:
        result = fn(w.clone())
    except NotImplementedError:
        return _not_attempted("fill in my_quantize_int8 and run this cell again.")
    if result is None:
        return _not_attempted("my_quantize_int8 returns None; return (q, scale).")
    q, scale = result
    scale = torch.as_tensor(scale, dtype=torch.float32)
    assert q.dtype == torch.int8, f"q must be stored as torch.int8 (got {q.dtype}): use .to(torch.int8) after rounding"
    assert q.shape == w.shape, f"q must have the weight's shape {tuple(w.shape)}, got {tuple(q.shape)}"
    assert int(q.abs().max()) <= 127, "int8 symmetric codes must lie in [-127, 127]: clamp after rounding"
    assert (scale > 0).all(), "every scale must be positive (max|w| / 127)"
    error = (q.float() * scale - w).abs()
    bound = (scale / 2).expand_as(w) + 1e-6
    assert (error <= bound).all(), (f"dequantized weights miss by up to {error.max():.4g}, more than half a step "
                                    f"(scale/2): round to the nearest code (torch.round) and use scale = max|w|/127")
    granularity = "per-channel" if scale.numel() > 1 else "per-tensor"
    print(f"Correct: {granularity} int8 quantization, worst error {error.max():.4g} <= scale/2 everywhere.")
    return True


KV_EXERCISE_CASES = (
    dict(n_layers=32, n_heads=32, head_dim=128, seq_len=4096, bytes_per_value=2, batch=1),
    dict(n_layers=2, n_heads=4, head_dim=16, seq_len=256, bytes_per_value=4, batch=1),
    dict(n_layers=80, n_heads=8, head_dim=128, seq_len=8192, bytes_per_value=2, batch=16),
)


def check_kv_cache_exercise(fn: Callable[..., int]) -> bool:
    """Check a learner's KV-cache memory formula on a 7B-like model and two others."""
    from helpers.decoding import kv_cache_bytes

    try:
        answers = [fn(**case) for case in KV_EXERCISE_CASES]
    except NotImplementedError:
        return _not_attempted("fill in my_kv_cache_bytes and run this cell again.")
    if any(a is None for a in answers):
        return _not_attempted("my_kv_cache_bytes returns None; return a number of bytes.")
    for case, answer in zip(KV_EXERCISE_CASES, answers):
        truth = kv_cache_bytes(**case)
        hint = ("remember both K and V (factor 2)" if answer * 2 == truth else
                "count every layer, head, position, byte and sequence in the batch")
        assert answer == truth, f"for {case} expected {truth:,} bytes, got {answer:,}: {hint}"
    print(f"Correct: a 32-layer, 32-head, 128-dim model in fp16 holds {answers[0] / 2**30:.1f} GiB of cache "
          "per 4096-token sequence.")
    return True


def matched_keep_fraction(model: nn.Module, density: float) -> float:
    """The neuron keep-fraction at which :func:`prune_neurons` leaves ``density`` of the Linear weights.

    Lets structured pruning be compared with unstructured pruning at the same number of weights.
    """
    density = check_float("density", density, 0.0, 1.0, lo_open=True)
    shapes = [(m.in_features, m.out_features) for m in linear_layers(model)]
    total = sum(a * b for a, b in shapes)

    def kept(f: float) -> float:
        widths = [shapes[0][0]] + [max(1, round(b * f)) for _, b in shapes[:-1]] + [shapes[-1][1]]
        return sum(a * b for a, b in zip(widths[:-1], widths[1:])) / total

    lo, hi = 1e-4, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) < density else (lo, mid)
    return hi


def gradual_prune(model: nn.Module, data, schedule: Sequence[float] = (0.5, 0.75, 0.9), epochs_per_step: int = 5,
                  lr: float = 5e-4, seed: int = 0) -> nn.Module:
    """Prune in steps of rising global sparsity, fine-tuning after each (masks keep pruned weights at 0).

    Small steps let the surviving weights take over the work of the removed ones before the
    next cut (the recipe of Zhu and Gupta 2017, in miniature).  Returns a pruned copy, masks folded in.
    """
    from helpers.train import fit

    check_int("epochs_per_step", epochs_per_step, 1, 1000)
    levels = [check_float("schedule", s, 0.0, 1.0, hi_open=True) for s in schedule]
    if not levels or any(b <= a for a, b in zip(levels[:-1], levels[1:])):
        raise ValueError(f"schedule must be a non-empty, increasing list of sparsities in [0, 1), got {list(schedule)}")
    pruned = copy.deepcopy(model)
    for sparsity in levels:
        pruned = global_magnitude_prune(pruned, sparsity)   # earlier zeros are the smallest weights: they stay cut
        fit(pruned, data, epochs=epochs_per_step, lr=lr, seed=seed, progress=False)
        make_pruning_permanent(pruned)
    return pruned.eval()
