"""Small models for the curriculum: a configurable MLP and a 1-D CNN for MNIST-1D."""
from __future__ import annotations

import math

import torch
from torch import nn

from helpers.validation import check_choice, check_float, check_int

ACTIVATIONS = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
    "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU, "identity": nn.Identity,
}
INITS = ("default", "xavier", "he", "naive")
NORMS = (None, "batch", "layer")
MAX_DEPTH, MAX_WIDTH = 100, 4096


class Block(nn.Module):
    """One hidden layer: ``[norm] -> linear -> activation -> [dropout]``, optionally residual.

    With ``residual=True`` the block computes ``h + f(h)`` (a pre-norm residual block).
    """

    def __init__(self, width_in: int, width_out: int, activation: str, norm: str | None,
                 residual: bool, dropout: float) -> None:
        super().__init__()
        self.norm = {None: nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](width_in) \
            if norm else nn.Identity()
        self.linear = nn.Linear(width_in, width_out)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual and width_in == width_out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.act(self.linear(self.norm(h))))
        return h + out if self.residual else out


class MLP(nn.Module):
    """Input -> ``depth`` hidden blocks of ``width`` units -> linear head.

    ``forward_with_hidden`` also returns every block's output, which the gradient-flow and
    activation-statistics experiments inspect.
    """

    def __init__(self, in_features: int, n_classes: int, width: int = 128, depth: int = 2,
                 activation: str = "relu", init: str = "default", norm: str | None = None,
                 residual: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("in_features", in_features, 1, 1_000_000)
        check_int("n_classes", n_classes, 1, 100_000)
        check_int("width", width, 1, MAX_WIDTH)
        check_int("depth", depth, 1, MAX_DEPTH)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("init", init, INITS)
        check_choice("norm", norm, NORMS)
        check_float("dropout", dropout, 0.0, 1.0, hi_open=True)
        self.config = dict(width=width, depth=depth, activation=activation, init=init,
                           norm=norm, residual=residual, dropout=dropout)
        widths = [in_features] + [width] * depth
        self.blocks = nn.ModuleList(
            Block(widths[i], widths[i + 1], activation, norm if i > 0 else None, residual and i > 0, dropout)
            for i in range(depth))
        self.head = nn.Linear(width, n_classes)
        initialise(self, init, activation)

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the list of hidden activations, one per block."""
        hidden = []
        h = x.flatten(1)
        for block in self.blocks:
            h = block(h)
            hidden.append(h)
        return self.head(h), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]


def mlp(in_features: int, n_classes: int, width: int = 128, depth: int = 2, activation: str = "relu",
        init: str = "default", norm: str | None = None, residual: bool = False,
        dropout: float = 0.0) -> MLP:
    """Build an :class:`MLP`; see its arguments. Depth is the number of hidden layers (1-100)."""
    return MLP(in_features, n_classes, width, depth, activation, init, norm, residual, dropout)


def initialise(model: nn.Module, init: str, activation: str = "relu") -> nn.Module:
    """Re-initialise every ``nn.Linear`` in ``model``.

    ``default`` keeps PyTorch's; ``xavier`` (Glorot & Bengio 2010) keeps variance for tanh-like
    units; ``he`` (He et al. 2015) doubles it for ReLU; ``naive`` draws N(0, 1), which explodes.
    Biases are zeroed for the non-default schemes.
    """
    check_choice("init", init, INITS)
    check_choice("activation", activation, ACTIVATIONS)
    if init == "default":
        return model
    gain = nn.init.calculate_gain("relu" if activation in ("relu", "gelu", "silu", "leaky_relu") else
                                  "tanh" if activation == "tanh" else "linear")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                if init == "xavier":
                    nn.init.xavier_normal_(module.weight)
                elif init == "he":
                    nn.init.normal_(module.weight, 0.0, gain / math.sqrt(module.in_features))
                else:
                    nn.init.normal_(module.weight, 0.0, 1.0)
                nn.init.zeros_(module.bias)
    return model


POOLINGS = ("flatten", "average")


class CNN1D(nn.Module):
    """A small 1-D convolutional net for length-``length`` signals such as MNIST-1D.

    Three convolutions with ReLU, then a linear classifier. The default, as in Greydanus (2020), strides
    every convolution by 2 and flattens the feature map into the classifier (about 90% test accuracy on
    MNIST-1D with enough data). ``first_stride=1`` keeps full resolution in the first layer, and
    ``pooling="average"`` averages each channel over positions before the classifier (global average
    pooling, as in modern CNNs): the classifier then sees *what* was detected, not *where*.
    """

    def __init__(self, n_classes: int = 10, channels: int = 32, length: int = 40, kernel_size: int = 5,
                 first_stride: int = 2, pooling: str = "flatten") -> None:
        super().__init__()
        check_int("n_classes", n_classes, 1, 100_000)
        check_int("channels", channels, 1, 1024)
        check_int("length", length, 8, 100_000)
        check_int("kernel_size", kernel_size, 1, 31)
        check_int("first_stride", first_stride, 1, 2)
        check_choice("pooling", pooling, POOLINGS)
        pad = kernel_size // 2
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size, stride=first_stride, padding=pad), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, stride=2, padding=pad), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, stride=2, padding=pad), nn.ReLU(),
        )
        self.pooling = pooling
        with torch.no_grad():
            n_flat = channels if pooling == "average" else self.features(torch.zeros(1, 1, length)).numel()
        self.head = nn.Linear(n_flat, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)               # (B, 1, length)
        features = self.features(x)          # (B, channels, positions)
        pooled = features.mean(dim=-1) if self.pooling == "average" else features.flatten(1)
        return self.head(pooled)


def cnn1d(n_classes: int = 10, channels: int = 32, length: int = 40, kernel_size: int = 5,
          first_stride: int = 2, pooling: str = "flatten") -> CNN1D:
    """Build a :class:`CNN1D`."""
    return CNN1D(n_classes, channels, length, kernel_size, first_stride, pooling)


def serialized_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint of the model weighs on disk.

    Works for models without ordinary parameters too (``quantize_dynamic`` packs its weights into the
    state dict), and ignores whether the model is in train or eval mode.
    """
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
