"""Notebook 04, section 3: CNNs vs transformers, read as inductive biases.

A convolution assumes that nearby inputs belong together and that a pattern means the same wherever it sits
(translation equivariance); attention without positional information treats its inputs as a set
(permutation equivariance) and learns every relation from data; an MLP assumes nothing about order. The
experiments check the symmetries exactly, then train the three models on MNIST-1D (Greydanus 2020) with the
input positions intact and scrambled, and with little and more data.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import data, models, plotting
from helpers import progress as cell_progress
from helpers.progress import Report
from helpers.scratch.attention import MultiHeadSelfAttention
from helpers.scratch.transformer import TransformerBlock
from helpers.train import sampled_steps
from helpers.validation import check_choice, check_float, check_int

LENGTH, N_CLASSES = 40, 10
ARCHITECTURES = ("CNN", "transformer", "MLP")
# Each model's better Adam learning rate of 3e-3 and 1e-2 after 1000 steps on MNIST-1D (seeds 0-2, 400 and
# 3200 examples): the transformer prefers the lower one, as transformers usually do.
LEARNING_RATES = {"CNN": 1e-2, "transformer": 3e-3, "MLP": 1e-2}


class PatchTransformer(nn.Module):
    """A tiny vision-transformer for 1-D signals (Dosovitskiy et al. 2021, in one dimension).

    The signal is cut into patches of ``patch`` samples, each patch is embedded linearly, a learned
    positional embedding says where it came from, transformer blocks mix the patches, and the mean over
    patches feeds a linear classifier.
    """

    def __init__(self, length: int = LENGTH, patch: int = 4, width: int = 32, heads: int = 4, depth: int = 1,
                 n_classes: int = N_CLASSES) -> None:
        super().__init__()
        check_int("patch", patch, 1, length)
        if length % patch:
            raise ValueError(f"patch must divide length {length}, got {patch}")
        check_int("depth", depth, 1, 12)
        self.patch = patch
        self.embed = nn.Linear(patch, width)
        self.position = nn.Parameter(0.02 * torch.randn(length // patch, width))
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x.reshape(x.shape[0], -1, self.patch)          # (B, patches, patch)
        h = self.embed(patches) + self.position                 # (B, patches, width)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))               # (B, classes)


def build(architecture: str) -> nn.Module:
    """The three models compared (about 11k, 14k and 23k parameters)."""
    check_choice("architecture", architecture, ARCHITECTURES)
    if architecture == "CNN":
        return models.cnn1d(N_CLASSES, channels=32, length=LENGTH, first_stride=1, pooling="average")
    if architecture == "transformer":
        return PatchTransformer()
    return models.mlp(LENGTH, N_CLASSES, width=128, depth=2)


def flops_per_example(architecture: str) -> int:
    """Floating-point operations of one forward pass on one example (PyTorch's FLOP counter)."""
    model = build(architecture)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, LENGTH))
    return int(counter.get_total_flops())


# ---- exact symmetry checks ------------------------------------------------------------------------------

def shift_commutes_with_circular_convolution(shift: int = 7, seed: int = 0) -> float:
    """Largest |conv(shift(x)) - shift(conv(x))| for a random circular convolution (0: exact equivariance)."""
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    conv = nn.Conv1d(1, 8, kernel_size=5, padding=2, padding_mode="circular")
    x = torch.randn(4, 1, LENGTH)
    with torch.no_grad():
        return float((conv(x.roll(shift, dims=-1)) - conv(x).roll(shift, dims=-1)).abs().max())


def permutation_commutes_with_attention(positions: bool, seed: int = 0, tokens: int = 10, width: int = 32) -> float:
    """Largest |attn(permute(x)) - permute(attn(x))|, with or without a learned-style positional embedding."""
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    layer = MultiHeadSelfAttention(width, 4)
    position = torch.randn(tokens, width) if positions else torch.zeros(tokens, width)
    x = torch.randn(4, tokens, width)
    order = torch.randperm(tokens)
    with torch.no_grad():
        permuted_first = layer(x[:, order] + position)
        permuted_after = layer(x + position)[:, order]
    return float((permuted_first - permuted_after).abs().max())


# ---- training ----------------------------------------------------------------------------------------------

def scrambled(split: data.Splits, seed: int) -> data.Splits:
    """The same examples with their 40 positions shuffled by one fixed permutation (train, val and test)."""
    order = torch.randperm(LENGTH, generator=torch.Generator().manual_seed(seed)).to(split.x_train.device)
    return replace(split, x_train=split.x_train[:, order], x_val=split.x_val[:, order], x_test=split.x_test[:, order])


@dataclass
class Run:
    """One trained model and its test accuracy."""

    architecture: str
    n_train: int
    scrambled: bool
    test_acc: float
    model: nn.Module


def train(architecture: str, split: data.Splits, steps: int, scramble: bool = False, lr: float | None = None,
          batch_size: int = 64, seed: int = 0, progress: Report | None = None) -> Run:
    """Adam for ``steps`` mini-batches drawn with replacement: the same budget at any data size.

    ``scramble`` trains and tests on :func:`scrambled` inputs (the permutation is fixed by ``seed``);
    ``lr`` defaults to the architecture's entry in ``LEARNING_RATES``.
    """
    check_choice("architecture", architecture, ARCHITECTURES)
    check_int("steps", steps, 1, 100_000)
    lr = check_float("lr", LEARNING_RATES[architecture] if lr is None else lr, 0.0, 1.0, lo_open=True)
    check_int("batch_size", batch_size, 1, 4096)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    split = scrambled(split, seed) if scramble else split
    model = build(architecture).to(split.x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    sampled_steps(model, optimizer, split, steps, batch_size, generator, progress)
    model.eval()
    with torch.no_grad():
        test_acc = float((model(split.x_test).argmax(-1) == split.y_test).float().mean())
    return Run(architecture, len(split.y_train), scramble, test_acc, model)


def run_grid(jobs: list[tuple[str, int, bool]], steps: int, seed: int = 0,
             device: torch.device | str = "cpu") -> dict[tuple[str, int, bool], Run]:
    """Train every (architecture, training examples, scrambled) job once, on the same splits for a seed."""
    runs = {}
    for architecture, n_train, scramble in jobs:
        split = data.mnist1d(n_train=n_train, seed=seed, device=device)
        report = cell_progress.cell_report(f"{architecture}, {n_train} examples{', scrambled' if scramble else ''}")
        runs[(architecture, n_train, scramble)] = train(architecture, split, steps, scramble, seed=seed,
                                                        progress=report)
    return runs


def plot_grid(runs: dict[tuple[str, int, bool], Run]):
    """Test accuracy of each run as grouped bars: architectures by data size and scrambling."""
    fig, ax = plotting.figure("Inductive bias: what each architecture gets from structure",
                              "architecture", "test accuracy (fraction correct)")
    settings = sorted({(n, s) for (_, n, s) in runs}, key=lambda k: (k[1], k[0]))
    present = [architecture for architecture in ARCHITECTURES if any(key[0] == architecture for key in runs)]
    width = 0.8 / len(settings)
    for i, (n, scramble) in enumerate(settings):
        xs, ys = [], []
        for j, architecture in enumerate(present):
            if (architecture, n, scramble) in runs:
                xs.append(j + (i - (len(settings) - 1) / 2) * width)
                ys.append(runs[(architecture, n, scramble)].test_acc)
        bars = ax.bar(xs, ys, width, label=f"{n} examples{', positions scrambled' if scramble else ''}",
                      hatch="//" if scramble else None)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1 / N_CLASSES, color="grey", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(present)), present)
    ax.set_ylim(0, 1)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig
