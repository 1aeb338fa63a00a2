"""Quantization from scratch: symmetric int8 (and fewer bits), per tensor or per channel, and an int8 layer.

Symmetric quantization stores a float ``w`` as an integer code ``q`` and one float scale ``s``::

    s = max|w| / qmax,   q = clip(round(w / s), -qmax, qmax),   w_hat = s * q,   |w - w_hat| <= s / 2

with ``qmax = 2^(bits-1) - 1`` (127 for int8, 7 for int4). *Per tensor* shares one scale across a whole
weight matrix; *per channel* gives each output row its own, so a row of small weights is not forced onto
a grid sized for the largest row. An int8 linear layer also quantizes its input on the fly (one scale
per row: *dynamic* activation quantization), multiplies the codes with int32 accumulation, and rescales::

    y[b, i] ~ s_x[b] * s_w[i] * sum_j q_x[b, j] q_w[i, j] + bias[i]
"""
from __future__ import annotations

import copy
import re
import warnings

import torch
from torch import nn
from torch.nn import functional

from helpers.validation import check_choice, check_float, check_int

GRANULARITIES = ("per_tensor", "per_channel")


def quantize_symmetric(w: torch.Tensor, bits: int = 8, granularity: str = "per_channel"
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``q`` (int8, the shape of ``w``) and scales ``s`` for a 2-D weight ``w`` of shape (out, in).

    ``s`` has shape (out, 1) per channel, () per tensor, so ``q * s`` is the dequantized weight.
    """
    check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"w must be a 2-D floating-point tensor, got shape {tuple(w.shape)} and {w.dtype}")
    qmax = 2 ** (bits - 1) - 1
    peak = w.abs().amax(dim=1, keepdim=True) if granularity == "per_channel" else w.abs().amax()  # (out, 1) or ()
    scale = peak.clamp_min(1e-12) / qmax
    q = torch.clamp(torch.round(w / scale), -qmax, qmax).to(torch.int8)                         # (out, in)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Back to float: ``q * scale`` (each entry within ``scale / 2`` of the original)."""
    return q.float() * scale


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic int8 quantization of activations ``x`` (rows, features): one scale per row, found on the fly."""
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor of shape (rows, features), got {tuple(x.shape)}")
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127       # (rows, 1)
    return torch.clamp(torch.round(x / scale), -127, 127).to(torch.int8), scale


def int_mm_padding(m: int, k: int, n: int, device: torch.device | str = "cpu") -> tuple[int, int, int]:
    """Sizes ``(m, k, n)`` padded to what ``torch._int_mm`` accepts on ``device``.

    CUDA's kernel needs ``m > 16`` and every size a multiple of 8; the CPU kernel takes any shape.
    """
    if torch.device(device).type != "cuda":
        return m, k, n
    return -(-max(m, 17) // 8) * 8, -(-k // 8) * 8, -(-n // 8) * 8


def int8_matmul(a: torch.Tensor, b: torch.Tensor, force_pad: bool = False) -> torch.Tensor:
    """``a @ b`` for int8 ``a`` (m, k) and ``b`` (k, n), accumulated exactly in int32 (``torch._int_mm``).

    Zero-pads where the kernel's shape rules need it (``force_pad`` pads as on CUDA) and slices back.
    """
    if a.dtype != torch.int8 or b.dtype != torch.int8 or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b must be int8 matrices (m, k) and (k, n), got {tuple(a.shape)} {a.dtype} "
                         f"and {tuple(b.shape)} {b.dtype}")
    m, k = a.shape
    n = b.shape[1]
    padded_m, padded_k, padded_n = int_mm_padding(m, k, n, "cuda" if force_pad else a.device)
    if (padded_m, padded_k, padded_n) != (m, k, n):
        a = functional.pad(a, (0, padded_k - k, 0, padded_m - m))           # (padded_m, padded_k)
        b = functional.pad(b, (0, padded_n - n, 0, padded_k - k))           # (padded_k, padded_n)
    if b.is_cuda:
        b = b.t().contiguous().t()  # cuBLASLt's int8 kernel wants the right operand column-major
    return torch._int_mm(a, b)[:m, :n]                                      # (m, n) int32


class Int8Linear(nn.Module):
    """A linear layer with symmetric int8 weights and dynamically quantized int8 inputs."""

    def __init__(self, linear: nn.Linear, granularity: str = "per_channel") -> None:
        super().__init__()
        q, scale = quantize_symmetric(linear.weight.detach().float(), 8, granularity)
        self.in_features, self.out_features, self.granularity = linear.in_features, linear.out_features, granularity
        self.register_buffer("weight_t", q.t().contiguous())               # (in, out) int8, ready for x @ W^T
        self.register_buffer("scale", scale.reshape(1, -1))                # (1, out) or (1, 1)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_codes, x_scale = quantize_rows(x.flatten(1))                     # (B, in) int8, (B, 1)
        out = int8_matmul(x_codes, self.weight_t).float() * (x_scale * self.scale)   # (B, out)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.granularity}"


def quantize_linears(model: nn.Module, granularity: str = "per_channel") -> nn.Module:
    """A copy of ``model`` in eval mode with every ``nn.Linear`` replaced by :class:`Int8Linear`."""
    check_choice("granularity", granularity, GRANULARITIES)
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child, granularity))
    return model.eval()


def fake_quantize(model: nn.Module, bits: int = 8, granularity: str = "per_channel") -> nn.Module:
    """A float copy of ``model`` whose ``nn.Linear`` weights are rounded to ``bits`` bits (weight-only).

    It still computes in float, so it isolates the accuracy cost of rounding the weights.
    """
    check_int("bits", bits, 2, 8)
    check_choice("granularity", granularity, GRANULARITIES)
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.copy_(dequantize(*quantize_symmetric(module.weight, bits, granularity)))
    return model


def smooth_scales(activation_peak: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant's per-input-channel factors ``s_j = max|x_j|^alpha / max|W_:j|^(1 - alpha)`` (Xiao et al. 2023).

    ``x / s`` and ``W * s`` give the same product ``x W^T`` but move the outliers of a few activation
    channels into the weights, where per-channel scales absorb them.
    """
    check_float("alpha", alpha, 0.0, 1.0)
    if weight.dim() != 2 or activation_peak.shape != (weight.shape[1],):
        raise ValueError(f"activation_peak must have shape ({weight.shape[-1]},) to match weight (out, in), "
                         f"got {tuple(activation_peak.shape)} and {tuple(weight.shape)}")
    weight_peak = weight.abs().amax(dim=0)                                  # (in,)
    return (activation_peak.clamp_min(1e-5) ** alpha / weight_peak.clamp_min(1e-5) ** (1 - alpha)).clamp_min(1e-5)


DEPRECATIONS = (re.escape("torch.ao.quantization is deprecated"),
                re.escape("torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor"))


def library_quantize_dynamic(model: nn.Module, per_channel: bool = False) -> nn.Module:
    """PyTorch's own int8 route: ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``, on the CPU.

    Its default weight scheme is per *tensor*; ``per_channel=True`` asks for per-channel weight scales.
    PyTorch 2.13 flags ``torch.ao.quantization`` as deprecated in favour of torchao; the eager API still
    works and ships fast CPU kernels, so exactly those two warnings are silenced, only inside this call.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATIONS[0], category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=DEPRECATIONS[1], category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear: qconfig},
                                                      dtype=torch.qint8)
