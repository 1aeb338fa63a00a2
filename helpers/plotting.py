"""One plotting style for the curriculum, and the few figures every notebook needs.

Every function returns the matplotlib ``Figure``; in a notebook it shows once at the end
of the cell.  Figures are PNG (nbval compares SVG, never PNG).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np

from helpers.validation import check_choice

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
STYLE = {
    "figure.figsize": (6.4, 3.8), "figure.dpi": 100, "savefig.dpi": 120,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 10, "legend.fontsize": 9,
    "legend.frameon": False, "lines.linewidth": 1.8, "image.cmap": "viridis",
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE), "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the curriculum's style and PNG inline output."""
    matplotlib.rcParams.update(STYLE)
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("png")
    except ImportError:  # pragma: no cover - only outside Jupyter installs
        pass


def figure(title: str, xlabel: str, ylabel: str, ncols: int = 1, figsize: tuple[float, float] | None = None):
    """A styled figure with ``ncols`` axes; the title goes on the figure, labels on every axis."""
    import matplotlib.pyplot as plt

    use_style()
    if not title or not xlabel or not ylabel:
        raise ValueError("title, xlabel and ylabel must be non-empty: every figure is titled and labelled")
    fig, axes = plt.subplots(1, ncols, figsize=figsize or (6.4 if ncols == 1 else 4.2 * ncols, 3.8), squeeze=False)
    axes = list(axes[0])
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.suptitle(title) if ncols > 1 else axes[0].set_title(title)
    return fig, (axes[0] if ncols == 1 else axes)


def learning_curves(histories: Mapping[str, object], title: str = "Learning curves",
                    metrics: Sequence[str] = ("loss", "acc")):
    """Train (dashed) and validation (solid) curves for each named history, one panel per metric."""
    labels = {"loss": "cross-entropy loss (nats)", "acc": "accuracy (fraction correct)"}
    for m in metrics:
        check_choice("metrics", m, labels)
    fig, axes = figure(title, "epoch", labels[metrics[0]], ncols=len(metrics))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, metric in zip(axes, metrics):
        ax.set_ylabel(labels[metric])
        for color, (name, h) in zip(PALETTE * 4, histories.items()):
            ax.plot(h.epoch, getattr(h, f"train_{metric}"), "--", color=color, alpha=0.8, label=f"{name} train")
            ax.plot(h.epoch, getattr(h, f"val_{metric}"), "-", color=color, label=f"{name} validation")
        ax.legend()
    return fig


def layer_bars(values: Mapping[str, Sequence[float]], title: str, ylabel: str, log: bool = True,
               xlabel: str = "layer (input side -> output side)", reference: float | None = None):
    """Grouped bars of one value per layer for each named setting (log scale by default)."""
    fig, ax = figure(title, xlabel, ylabel)
    names = list(values)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        v = np.asarray(values[name], dtype=float)
        ax.bar(np.arange(1, len(v) + 1) + (i - (len(names) - 1) / 2) * width, v, width, label=name)
    if log:
        ax.set_yscale("log")
    if reference is not None:
        ax.axhline(reference, color="black", ls=":", lw=1, label=f"reference {reference:g}")
    if len(names) > 1 or reference is not None:
        ax.legend(fontsize=8)
    return fig


def heatmap(matrix: np.ndarray, xticks: Sequence, yticks: Sequence, title: str, xlabel: str, ylabel: str,
            cbar_label: str, fmt: str = "{:.2f}", ax=None, vmin: float | None = None, vmax: float | None = None):
    """An annotated heatmap of ``matrix`` (rows = ``yticks``, columns = ``xticks``)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(yticks), len(xticks)):
        raise ValueError(f"matrix must have shape ({len(yticks)}, {len(xticks)}), got {matrix.shape}")
    if ax is None:
        fig, ax = figure(title, xlabel, ylabel)
    else:
        fig = ax.figure
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    ax.grid(False)
    image = ax.imshow(matrix, origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(xticks)), [str(t) for t in xticks], rotation=45)
    ax.set_yticks(range(len(yticks)), [str(t) for t in yticks])
    mid = np.nanmean(matrix)
    for (r, c), v in np.ndenumerate(matrix):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=7,
                color="white" if v < mid else "black")
    fig.colorbar(image, ax=ax, label=cbar_label)
    return fig


def decision_boundary(model, x, y, title: str = "Decision boundary", resolution: int = 200):
    """Predicted class over a grid around 2-D inputs ``x``, with the points coloured by ``y``."""
    import torch

    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
    xs = x.detach().cpu().numpy()
    lo, hi = xs.min(axis=0) - 0.3, xs.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = torch.tensor(np.c_[gx.ravel(), gy.ravel()], dtype=x.dtype, device=x.device)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        pred = model(grid).argmax(-1).cpu().numpy().reshape(gx.shape)
        model.train(was_training)
    fig, ax = figure(title, "feature 1 (standardised units)", "feature 2 (standardised units)")
    ax.contourf(gx, gy, pred, alpha=0.25, levels=np.arange(pred.max() + 2) - 0.5, cmap="coolwarm")
    ax.scatter(xs[:, 0], xs[:, 1], c=y.cpu().numpy(), s=8, cmap="coolwarm", edgecolors="none")
    return fig


def legend_outside(ax, below: bool = False, columns: int = 1) -> None:
    """Put ``ax``'s legend beside the axes (or below them, in ``columns`` columns), never over the data."""
    if below:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=columns)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
