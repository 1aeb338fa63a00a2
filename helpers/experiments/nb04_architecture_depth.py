"""Notebook 04, section 4: residual connections and the degradation problem (He et al. 2016).

Two stacks of the same blocks, LayerNorm -> Linear -> ReLU, differ in one line: the plain stack replaces its
input, ``h = f(h)``; the residual stack adds to it, ``h = h + f(h)`` (a pre-norm residual block, as in
transformers). Both are trained on MNIST-1D for the same number of steps, and we read the *training* loss:
if a deeper plain network fits its own training set worse, the problem is optimisation, not overfitting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional

from helpers import data, models, plotting
from helpers import progress as cell_progress
from helpers.progress import Report
from helpers.train import sampled_steps
from helpers.validation import check_choice, check_float, check_int

NORMS = {"none": None, "layer": "layer", "batch": "batch"}
CHANCE_LOSS = math.log(10)


def build(depth: int, residual: bool, norm: str = "layer", width: int = 64) -> models.MLP:
    """An MLP of ``depth`` hidden blocks on MNIST-1D's 40 inputs (the first block maps 40 -> ``width``)."""
    check_choice("norm", norm, NORMS)
    return models.mlp(40, 10, width=width, depth=depth, norm=NORMS[norm], residual=residual)


@dataclass
class DepthRun:
    """Training-set loss of one network, measured every few steps (``steps[0] == 0``: at initialisation)."""

    depth: int
    residual: bool
    norm: str
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)

    def final(self) -> float:
        return self.train_loss[-1]

    def at(self, step: int) -> float:
        """Training loss after ``step`` training steps (a checkpoint)."""
        if step not in self.steps:
            raise ValueError(f"step must be one of the checkpoints {self.steps}, got {step}")
        return self.train_loss[self.steps.index(step)]


@torch.no_grad()
def training_loss(model: torch.nn.Module, split: data.Splits) -> float:
    """Cross-entropy on the whole training set, in eval mode (mode restored after)."""
    was_training = model.training
    model.eval()
    loss = float(functional.cross_entropy(model(split.x_train), split.y_train))
    model.train(was_training)
    return loss if math.isfinite(loss) else math.inf


def train(depth: int, residual: bool, split: data.Splits, steps: int, norm: str = "layer", width: int = 64,
          lr: float = 1e-3, batch_size: int = 128, seed: int = 0, checkpoints: int = 10,
          progress: Report | None = None) -> DepthRun:
    """Adam on mini-batches of the training set; training loss at ``checkpoints`` even intervals."""
    check_int("depth", depth, 1, models.MAX_DEPTH)
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 1.0, lo_open=True)
    checkpoints = min(check_int("checkpoints", checkpoints, 1, 100_000), steps)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = build(depth, residual, norm, width).to(split.x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    run = DepthRun(depth, residual, norm, [0], [training_loss(model, split)])
    marks = set(np.linspace(0, steps, checkpoints + 1).round().astype(int)[1:].tolist())

    def checkpoint(done: int) -> bool:
        """Record the training loss at the marked steps; stop once it is no longer finite."""
        if done not in marks:
            return False
        run.steps.append(done)
        run.train_loss.append(training_loss(model, split))
        return not math.isfinite(run.train_loss[-1])

    sampled_steps(model, optimizer, split, steps, batch_size, generator, progress, after_step=checkpoint)
    return run


def gradient_ratio(depth: int, residual: bool, split: data.Splits, norm: str = "layer", width: int = 64,
                   seed: int = 0, batch_size: int = 256) -> float:
    """At initialisation: gradient norm of the first hidden-to-hidden layer's weights over the last hidden
    layer's. 1 means every layer gets gradients of the same size; far above 1, the gradient grows on its
    way back to the input and the early layers are pushed much harder than the late ones."""
    check_int("depth", depth, 3, models.MAX_DEPTH)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    model = build(depth, residual, norm, width).to(split.x_train.device)
    loss = functional.cross_entropy(model(split.x_train[:batch_size]), split.y_train[:batch_size])
    loss.backward()
    first, last = model.blocks[1].linear.weight.grad, model.blocks[-1].linear.weight.grad
    return float(first.norm() / last.norm())


def run_depths(depths: list[int], split: data.Splits, steps: int, seed: int = 0, width: int = 64,
               norm: str = "layer", lr: float = 1e-3, more_steps: int = 1,
               checkpoints: int = 10) -> dict[tuple[int, bool], DepthRun]:
    """Plain and residual networks at every depth (same data, steps and seed), the training loss measured
    ``checkpoints`` times per ``steps``. The deepest plain network trains ``more_steps`` times as long (the
    under-training control), with a checkpoint at ``steps``."""
    check_int("more_steps", more_steps, 1, 100)
    check_int("checkpoints", checkpoints, 1, 100_000)
    runs = {}
    for depth in depths:
        for residual in (False, True):
            longer = more_steps if (depth == max(depths) and not residual) else 1
            report = cell_progress.cell_report(f"{'residual' if residual else 'plain'} depth {depth}")
            runs[(depth, residual)] = train(depth, residual, split, longer * steps, norm, width, lr, seed=seed,
                                            checkpoints=checkpoints * longer, progress=report)
    return runs


def plot_depths(runs: dict[tuple[int, bool], DepthRun], title: str = "Deeper plain networks fit their own "
                "training set worse; residual ones do not"):
    """Training loss against steps: plain (dashed) and residual (solid), one colour per depth."""
    fig, ax = plotting.figure(title, "training steps", "training loss (nats)")
    depths = sorted({depth for depth, _ in runs})
    common = min(run.steps[-1] for run in runs.values())          # the budget every run had
    for colour, depth in zip(plotting.PALETTE, depths):
        for residual in (False, True):
            if (depth, residual) in runs:
                run = runs[(depth, residual)]
                longer = f", {run.steps[-1] / common:g}x steps" if run.steps[-1] > common else ""
                ax.plot(run.steps, run.train_loss, "-" if residual else "--", color=colour,
                        label=f"depth {depth}, {'residual' if residual else 'plain'}{longer}")
    ax.axhline(CHANCE_LOSS, color="grey", ls=":", lw=1.5, label="chance (ln 10)")
    top = 1.6 * CHANCE_LOSS                                          # the comparison lives below chance
    ax.set_ylim(0, top)
    clipped = [f"depth {run.depth} {'residual' if run.residual else 'plain'} starts at {run.train_loss[0]:.3g}"
               for run in runs.values() if not run.train_loss[0] <= top]
    if clipped:
        ax.text(0.98, 0.03, "above the axis: " + "; ".join(clipped), transform=ax.transAxes, ha="right",
                va="bottom", fontsize=8, color="#555555")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def depth_explorer(depth: int = 32, norm: str = "layer", steps: int = 300, split: data.Splits | None = None,
                   progress: Report | None = None):
    """Train a plain and a residual network of ``depth`` blocks with ``norm``; compare their training loss."""
    check_int("depth", depth, 2, 64)
    check_choice("norm", norm, NORMS)
    check_int("steps", steps, 10, 300)
    split = split if split is not None else data.mnist1d(seed=0)
    runs = {(depth, residual): train(depth, residual, split, steps, norm, seed=0,
                                     progress=cell_progress.share(progress, 0.5 * residual, 0.5 + 0.5 * residual))
            for residual in (False, True)}
    fig = plot_depths(runs, f"Depth {depth}, {norm} normalization: plain vs residual")
    plain, residual = runs[(depth, False)].final(), runs[(depth, True)].final()
    numbers = {"plain: final training loss": plain, "residual: final training loss": residual}
    if depth >= 3:
        numbers["gradient ratio first/last layer at init, plain"] = gradient_ratio(depth, False, split, norm)
        numbers["gradient ratio first/last layer at init, residual"] = gradient_ratio(depth, True, split, norm)
    broken = [name for name, loss in (("plain", plain), ("residual", residual)) if not loss < 10 * CHANCE_LOSS]
    if broken:
        numbers["note"] = (f"Training failed ({' and '.join(broken)}): the loss ended far above chance (ln 10 = 2.3) "
                           "or overflowed, where a curve stops early. Without normalization the residual stream grows "
                           "with every block, so the logits are huge from the start.")
    elif min(plain, residual) > CHANCE_LOSS - 0.05:
        numbers["note"] = "Neither network learned anything in this many steps: both sit at chance (ln 10)."
    return fig, numbers


@torch.no_grad()
def residual_stream_growth(depth: int = 64, width: int = 64, seed: int = 0) -> dict[str, float]:
    """Standard deviation of the last hidden layer at initialisation, residual stream with and without norm.

    Without normalization each block adds a non-negative ReLU(W h) to h, so the stream's scale (and a shared
    positive offset) is multiplied by a factor above one per block (1.1 to 1.3 with PyTorch's default
    initialisation at width 64): it grows exponentially with depth.
    """
    x = torch.randn(512, 40, generator=torch.Generator().manual_seed(seed))
    found = {}
    for norm in ("none", "layer"):
        torch.manual_seed(seed)
        model = build(depth, True, norm, width)
        _, hidden = model.forward_with_hidden(x)
        found[norm] = float(hidden[-1].std())
    return found
