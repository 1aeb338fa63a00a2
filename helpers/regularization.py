"""Regularization: augmentations, lever experiments, dropout statistics, early stopping,
validation overfitting, label smoothing and memorisation (notebook 03).

Everything trains through :func:`helpers.train.fit`; augmentations are ``train_transform(x, y)``
functions, label smoothing is ``torch.nn.functional.cross_entropy(..., label_smoothing=...)``
passed as ``loss_fn`` (the reported metrics stay plain NLL).
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from helpers import data as datasets
from helpers import models, plotting, train
from helpers.scratch.calibration import expected_calibration_error
from helpers.validation import check_choice, check_float, check_int

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
MAX_EPOCHS, MAX_WIDTH, MAX_TRAIN = 1000, 1024, 4000


# --------------------------------------------------------------------------- augmentation
def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Roll each row of ``x`` (n, length) circularly by its own random shift in [-max_shift, max_shift]."""
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, length), got {tuple(x.shape)}")
    check_int("max_shift", max_shift, 0, x.shape[1] - 1)
    shifts = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 1), generator=generator).to(x.device)
    positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    return x.gather(1, (positions - shifts) % x.shape[1])


def shift_augment(max_shift: int = 4) -> Transform:
    """A ``train_transform`` that shifts every signal by a random offset; labels unchanged."""
    check_int("max_shift", max_shift, 0, 100)

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return random_shift(x, max_shift), y
    return transform


def mixup(alpha: float, n_classes: int) -> Transform:
    """A ``train_transform`` for mixup (Zhang et al. 2018): convex mixes of pairs of examples.

    Each example is mixed with a random partner using ``lam ~ Beta(alpha, alpha)``
    (one ``lam`` per example); the targets become the same mix of one-hot labels, which
    ``F.cross_entropy`` accepts as class probabilities.
    """
    check_float("alpha", alpha, 0.0, 10.0, lo_open=True)
    check_int("n_classes", n_classes, 2, 10_000)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = beta.sample((x.shape[0],)).to(x.device)
        partner = torch.randperm(x.shape[0]).to(x.device)
        target = F.one_hot(y, n_classes).float() if y.dim() == 1 else y
        lam_x = lam.view(-1, *([1] * (x.dim() - 1)))
        return lam_x * x + (1 - lam_x) * x[partner], lam[:, None] * target + (1 - lam[:, None]) * target[partner]
    return transform


# --------------------------------------------------------------------------- callbacks
class WeightNorm(train.Callback):
    """Record the L2 norm of all weight matrices (biases excluded) after every epoch."""

    def on_train_begin(self, model: nn.Module) -> None:
        self.norms = [weight_norm(model)]

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        self.norms.append(weight_norm(model))
        return False

    def on_train_end(self, model: nn.Module, history: train.History) -> None:
        history.extra["weight_norm"] = self.norms


class StopAtTrainAccuracy(train.Callback):
    """Stop as soon as the training accuracy reaches ``target`` (used to time memorisation)."""

    def __init__(self, target: float = 0.99) -> None:
        self.target = check_float("target", target, 0.0, 1.0, lo_open=True)

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        return history.train_acc[-1] >= self.target


def weight_norm(model: nn.Module) -> float:
    """L2 norm of all weight matrices of ``model`` taken together (biases and norms excluded)."""
    with torch.no_grad():
        return math.sqrt(sum(float((p ** 2).sum()) for p in model.parameters() if p.dim() > 1))


def weights_of(model: nn.Module) -> np.ndarray:
    """All weight-matrix entries of ``model`` as one flat NumPy array (for histograms)."""
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters() if p.dim() > 1]).numpy()


# --------------------------------------------------------------------------- one training recipe
@dataclass(frozen=True)
class Recipe:
    """One way to train the MLP: the baseline plus whichever levers are switched on."""

    width: int = 256
    depth: int = 2
    epochs: int = 60
    lr: float = 1e-3
    batch_size: int = 64
    dropout: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    shift: int = 0
    mixup_alpha: float = 0.0
    patience: int | None = None
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        check_int("width", self.width, 1, MAX_WIDTH)
        check_int("depth", self.depth, 1, 8)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_float("lr", self.lr, 0.0, 1.0, lo_open=True)
        check_int("batch_size", self.batch_size, 1, 4096)
        check_float("dropout", self.dropout, 0.0, 0.95)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float("label_smoothing", self.label_smoothing, 0.0, 0.5)
        check_int("shift", self.shift, 0, 20)
        check_float("mixup_alpha", self.mixup_alpha, 0.0, 10.0)
        if self.patience is not None:
            check_int("patience", self.patience, 1, MAX_EPOCHS)
        check_choice("monitor", self.monitor, ("val_loss", "val_acc"))


@dataclass
class Run:
    """A trained model, its history, and its metrics on the untouched test split."""

    recipe: Recipe
    model: nn.Module
    history: train.History
    test_acc: float
    test_nll: float
    test_ece: float
    n_train: int
    extra: dict = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """The numbers of one line of the lever table."""
        final = self.history.final()
        return {"train acc": final["train_acc"], "val acc": final["val_acc"], "test acc": self.test_acc,
                "test NLL": self.test_nll, "test ECE": self.test_ece,
                "gap (train-test acc)": final["train_acc"] - self.test_acc, "epochs": len(self.history.epoch)}


def train_recipe(data: datasets.Splits, recipe: Recipe, seed: int = 0) -> Run:
    """Train a fresh MLP on ``data`` with ``recipe`` (initialised from ``seed``) and test it."""
    check_int("seed", seed, 0, 2**32 - 1)
    torch.manual_seed(seed)
    model = models.mlp(data.n_features, data.n_classes, width=recipe.width, depth=recipe.depth,
                       dropout=recipe.dropout).to(data.x_train.device)
    transforms = []
    if recipe.shift:
        transforms.append(shift_augment(recipe.shift))
    if recipe.mixup_alpha:
        transforms.append(mixup(recipe.mixup_alpha, data.n_classes))
    callbacks: list[train.Callback] = [WeightNorm()]
    if recipe.patience is not None:
        callbacks.append(train.EarlyStopping(monitor=recipe.monitor, patience=recipe.patience))
    loss_fn = functools.partial(F.cross_entropy, label_smoothing=recipe.label_smoothing) \
        if recipe.label_smoothing else None
    history = train.fit(model, data, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                        optimizer="adamw", weight_decay=recipe.weight_decay, loss_fn=loss_fn,
                        train_transform=_compose(transforms), callbacks=callbacks, seed=seed)
    logits = train.predict_logits(model, data.x_test)
    return Run(recipe, model, history, test_acc=(logits.argmax(-1) == data.y_test).float().mean().item(),
               test_nll=F.cross_entropy(logits, data.y_test).item(),
               test_ece=expected_calibration_error(logits.softmax(-1), data.y_test), n_train=len(data.y_train))


def _compose(transforms: Sequence[Transform]) -> Transform | None:
    if not transforms:
        return None

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for t in transforms:
            x, y = t(x, y)
        return x, y
    return transform


# --------------------------------------------------------------------------- the lever table
def lever_recipes(base: Recipe, *, weight_decay: float = 3.0, dropout: float = 0.5, small_width: int = 32,
                  patience: int = 10, label_smoothing: float = 0.1, shift: int = 4) -> dict[str, Recipe]:
    """The baseline and one recipe per lever (everything else equal); 'more data' reuses the baseline."""
    from dataclasses import replace

    return {"baseline": base, "more data (4x)": base, "smaller model": replace(base, width=small_width),
            "weight decay": replace(base, weight_decay=weight_decay), "dropout": replace(base, dropout=dropout),
            "early stopping": replace(base, patience=patience),
            "label smoothing": replace(base, label_smoothing=label_smoothing),
            "shift augmentation": replace(base, shift=shift)}


def run_levers(n_train: int, base: Recipe, seed: int = 0, data_factor: int = 4,
               progress: Callable[[float], None] | None = None, **lever_kwargs) -> dict[str, Run]:
    """Train the baseline and every lever of :func:`lever_recipes` on the same split and seed.

    'more data' trains the baseline recipe on ``data_factor`` times as many examples (same
    validation and test sets).
    """
    check_int("n_train", n_train, 20, MAX_TRAIN)
    check_int("data_factor", data_factor, 2, 16)
    small = datasets.mnist1d(n_train=n_train, seed=seed)
    big = datasets.mnist1d(n_train=min(data_factor * n_train, 3200), seed=seed)
    recipes = lever_recipes(base, **lever_kwargs)
    runs = {}
    for i, (name, recipe) in enumerate(recipes.items()):
        runs[name] = train_recipe(big if name.startswith("more data") else small, recipe, seed)
        if progress is not None:
            progress((i + 1) / len(recipes))
    return runs


def lever_table(runs: dict[str, Run]) -> str:
    """A Markdown table of the lever runs, with each lever's change against the baseline."""
    base = runs["baseline"]
    lines = ["| lever | train acc | test acc | change in test acc | test NLL | test ECE | train-test gap | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        r = run.row()
        lines.append(f"| {name} | {r['train acc']:.3f} | {r['test acc']:.3f} | {run.test_acc - base.test_acc:+.3f} | "
                     f"{r['test NLL']:.2f} | {r['test ECE']:.3f} | {r['gap (train-test acc)']:.3f} | {r['epochs']} |")
    return "\n".join(lines)


def plot_levers(runs: dict[str, Run]):
    """Test accuracy and test NLL of every lever, with the baseline as a dotted line."""
    fig, (ax_acc, ax_nll) = plotting.figure("Five levers against one overfitting baseline (MNIST-1D)",
                                            "lever", "test accuracy (fraction)", ncols=2, figsize=(11, 4.2))
    names = list(runs)
    colors = [plotting.PALETTE[0] if n == "baseline" else plotting.PALETTE[1] for n in names]
    for ax, values, label in ((ax_acc, [r.test_acc for r in runs.values()], "test accuracy (fraction)"),
                              (ax_nll, [r.test_nll for r in runs.values()], "test NLL (nats)")):
        ax.bar(range(len(names)), values, color=colors)
        ax.axhline(values[0], color="black", ls=":", lw=1, label="baseline")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        ax.set_ylabel(label)
        ax.legend()
    return fig


def size_sweep(sizes: Sequence[int], base: Recipe, seed: int = 0, known: dict[int, Run] | None = None) -> dict[int, Run]:
    """Train the baseline recipe on several training-set sizes (reusing runs in ``known``)."""
    out = dict(known or {})
    for n in sizes:
        check_int("sizes", n, 20, 3200)
        if n not in out:
            out[n] = train_recipe(datasets.mnist1d(n_train=n, seed=seed), base, seed)
    return dict(sorted(out.items()))


def plot_size_sweep(sweep: dict[int, Run]):
    """Train and test accuracy against training-set size (log x axis)."""
    fig, ax = plotting.figure("More data: the gap closes as the training set grows",
                              "training examples (count, log scale)", "accuracy (fraction)")
    sizes = list(sweep)
    ax.plot(sizes, [r.history.final()["train_acc"] for r in sweep.values()], "o--", label="train")
    ax.plot(sizes, [r.test_acc for r in sweep.values()], "o-", label="test")
    ax.set_xscale("log")
    ax.legend()
    return fig


def overfitting_numbers(history: train.History) -> dict[str, float]:
    """Where validation loss bottoms out, how far it rises after, and the final accuracy gap."""
    best = int(np.argmin(history.val_loss))
    return {"best val-loss epoch": history.epoch[best], "min val loss": history.val_loss[best],
            "final val loss": history.val_loss[-1], "val-loss rise": history.val_loss[-1] - history.val_loss[best],
            "final train loss": history.train_loss[-1], "gap (train-val acc)": history.final()["gap"]}


# --------------------------------------------------------------------------- dropout vs weight decay
def plot_dropout_vs_decay(runs: dict[str, Run]):
    """Validation accuracy, validation NLL, weight norm and weight histograms of three runs."""
    import matplotlib.pyplot as plt

    plotting.use_style()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    fig.suptitle("Dropout vs weight decay on the same overfitting MLP")
    panels = [("val_acc", "validation accuracy (fraction)"), ("val_loss", "validation NLL (nats)")]
    for ax, (metric, label) in zip(axes[0], panels):
        for name, run in runs.items():
            ax.plot(run.history.epoch, getattr(run.history, metric), label=name)
        ax.set(xlabel="epoch", ylabel=label, title=label.split(" (")[0])
        ax.legend()
    ax = axes[1][0]
    for name, run in runs.items():
        ax.plot(range(len(run.history.extra["weight_norm"])), run.history.extra["weight_norm"], label=name)
    ax.set(xlabel="epoch", ylabel="L2 norm of all weights (dimensionless)", title="weight-norm growth")
    ax.legend()
    ax = axes[1][1]
    for name, run in runs.items():
        ax.hist(weights_of(run.model), bins=120, range=(-0.4, 0.4), histtype="step", density=True, label=name, lw=1.5)
    ax.set(xlabel="weight value", ylabel="density (1 / weight unit)", title="distribution of weights", yscale="log")
    ax.legend()
    return fig


# --------------------------------------------------------------------------- dropout train vs eval
def dropout_statistics(p: float, n: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Mean and variance of zero-mean Gaussian activations after ``F.dropout`` in train and eval mode.

    Inverted dropout scales kept units by ``1/(1-p)``, so the mean is kept while the
    variance grows by exactly ``1/(1-p)`` in train mode: the ratio is returned with its
    theoretical value.
    """
    check_float("p", p, 0.0, 0.95)
    check_int("n", n, 1000, 5_000_000)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen)
    torch.manual_seed(seed)
    train_out, eval_out = F.dropout(x, p, training=True), F.dropout(x, p, training=False)
    return {"p": p, "mean train": train_out.mean().item(), "mean eval": eval_out.mean().item(),
            "var train": train_out.var().item(), "var eval": eval_out.var().item(),
            "variance ratio train/eval": (train_out.var() / eval_out.var()).item(),
            "theory 1/p_keep": 1 / (1 - p), "fraction zeroed": (train_out == 0).float().mean().item()}


def dropout_then_batchnorm(p: float, width: int = 64, n: int = 4096, steps: int = 200, seed: int = 0) -> dict[str, float]:
    """Dropout followed by BatchNorm: BN learns running statistics from dropped (noisier) inputs.

    Runs ``steps`` training-mode batches through ``Dropout(p) -> BatchNorm1d`` and then compares
    the BN output's standard deviation in train mode with eval mode (running statistics).
    Eval-mode output shrinks by about ``sqrt(1-p)``: the variance shift of Li et al. (2019).
    """
    check_float("p", p, 0.0, 0.95)
    check_int("width", width, 1, 1024)
    check_int("n", n, 16, 100_000)
    check_int("steps", steps, 1, 10_000)
    torch.manual_seed(seed)
    layer = nn.Sequential(nn.Dropout(p), nn.BatchNorm1d(width, momentum=None))
    x = torch.randn(n, width)
    layer.train()
    with torch.no_grad():
        for _ in range(steps):
            train_out = layer(x)
        bn = layer[1]
        running_var = bn.running_var.mean().item()
        layer.eval()
        eval_out = layer(x)
    return {"p": p, "BN running var": running_var, "input var (eval)": x.var().item(),
            "train-mode output std": train_out.std().item(), "eval-mode output std": eval_out.std().item(),
            "eval/train std ratio": eval_out.std().item() / train_out.std().item(),
            "theory sqrt(p_keep)": math.sqrt(1 - p)}


def dropout_explorer(p: float = 0.5):
    """Fast explorer: activations under dropout in train vs eval mode, and what BatchNorm after it sees."""
    stats = dropout_statistics(p, n=50_000)
    bn = dropout_then_batchnorm(p, width=32, n=1024, steps=20)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50_000, generator=gen)
    torch.manual_seed(0)
    fig, (ax1, ax2) = plotting.figure(f"Dropout p={p:.2f}: same mean, larger variance in train mode",
                                      "activation value", "density (1 / unit)", ncols=2, figsize=(10, 3.8))
    ax1.hist(F.dropout(x, p, training=True).numpy(), bins=100, range=(-6, 6), density=True, alpha=0.6,
             label="train mode (inverted dropout; spike = dropped units)")
    ax1.hist(x.numpy(), bins=100, range=(-6, 6), density=True, histtype="step", lw=1.5, label="eval mode (identity)")
    ax1.set_yscale("log")
    ax1.legend()
    keep = np.linspace(0.05, 1.0, 40)
    ax2.plot(1 - keep, 1 / keep, label="variance ratio train/eval = 1/p_keep")
    ax2.plot(1 - keep, np.sqrt(keep), label="BN after dropout: eval/train std = sqrt(p_keep)")
    ax2.plot([p], [stats["variance ratio train/eval"]], "o", color="black", label="measured here")
    ax2.plot([p], [bn["eval/train std ratio"]], "s", color="black")
    ax2.set(xlabel="dropout rate p", ylabel="ratio (dimensionless)", yscale="log")
    ax2.legend(fontsize=8)
    return fig, {"variance ratio train/eval": stats["variance ratio train/eval"], "1/p_keep": stats["theory 1/p_keep"],
                 "BN eval/train std": bn["eval/train std ratio"], "sqrt(p_keep)": bn["theory sqrt(p_keep)"]}


# --------------------------------------------------------------------------- early stopping and validation overfitting
def early_stopping_runs(data: datasets.Splits, base: Recipe, patience: int, seed: int = 0) -> dict[str, Run]:
    """The same training stopped by patience on validation loss and on validation accuracy."""
    from dataclasses import replace

    return {monitor: train_recipe(data, replace(base, patience=patience, monitor=monitor), seed)
            for monitor in ("val_loss", "val_acc")}


def plot_early_stopping(history: train.History, runs: dict[str, Run]):
    """The full (unstopped) validation curves with the epoch each criterion restored."""
    fig, (ax_loss, ax_acc) = plotting.figure("Where each early-stopping criterion stops", "epoch",
                                             "validation NLL (nats)", ncols=2, figsize=(10, 3.8))
    ax_loss.plot(history.epoch, history.val_loss, color="gray", label="no stopping")
    ax_acc.plot(history.epoch, history.val_acc, color="gray", label="no stopping")
    ax_acc.set_ylabel("validation accuracy (fraction)")
    for color, (monitor, run) in zip(plotting.PALETTE, runs.items()):
        for ax in (ax_loss, ax_acc):
            ax.axvline(run.history.best_epoch, color=color, ls="--", label=f"best {monitor} (restored)")
    ax_loss.legend()
    ax_acc.legend()
    return fig


def best_of_many(model: nn.Module, data: datasets.Splits, n_candidates: int = 200, noise: float = 0.3,
                 n_val: int = 100, seed: int = 0) -> dict[str, object]:
    """Pick the best of many near-identical models on a small validation set; compare with test.

    The candidates are ``model`` with small random weight perturbations (relative size
    ``noise``), so their true accuracies are alike: any edge the winner shows on validation is
    selection noise, which the untouched test set exposes.
    """
    check_int("n_candidates", n_candidates, 2, 5000)
    check_float("noise", noise, 0.0, 2.0)
    check_int("n_val", n_val, 10, len(data.y_val))
    gen = torch.Generator().manual_seed(seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    x_val, y_val = data.x_val[:n_val], data.y_val[:n_val]
    val_acc, test_acc = [], []
    candidate = copy.deepcopy(model).eval()
    with torch.no_grad():
        for _ in range(n_candidates):
            for name, p in candidate.named_parameters():
                p.copy_(base[name] + noise * base[name].std() * torch.randn(p.shape, generator=gen).to(p.device))
            val_acc.append((candidate(x_val).argmax(-1) == y_val).float().mean().item())
            test_acc.append((candidate(data.x_test).argmax(-1) == data.y_test).float().mean().item())
    val_acc, test_acc = np.array(val_acc), np.array(test_acc)
    best = int(np.argmax(val_acc))
    running_best = np.maximum.accumulate(val_acc)
    return {"val acc of winner": float(val_acc[best]), "test acc of winner": float(test_acc[best]),
            "mean val acc": float(val_acc.mean()), "mean test acc": float(test_acc.mean()),
            "inflation (winner val - winner test)": float(val_acc[best] - test_acc[best]),
            "val edge (winner - mean)": float(val_acc[best] - val_acc.mean()),
            "test edge (winner - mean)": float(test_acc[best] - test_acc.mean()),
            "val_acc": val_acc, "test_acc": test_acc, "running_best": running_best}


def plot_best_of_many(result: dict[str, object]):
    """The best validation score so far against the number of candidates tried, with test."""
    fig, ax = plotting.figure("Choosing the best of many on one validation set inflates its score",
                              "candidates tried (count, log scale)", "accuracy above the average candidate (fraction)")
    n = np.arange(1, len(result["val_acc"]) + 1)
    winners = [int(np.argmax(result["val_acc"][:k])) for k in n]
    ax.plot(n, result["running_best"] - result["mean val acc"], label="validation: best so far minus mean")
    ax.plot(n, result["test_acc"][winners] - result["mean test acc"], label="test: that winner minus mean")
    ax.axhline(0.0, color="black", ls=":", lw=1, label="average candidate")
    ax.set_xscale("log")
    ax.legend()
    return fig


# --------------------------------------------------------------------------- label smoothing and calibration
def confidence_summary(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, object]:
    """Accuracy, mean top-class confidence, ECE (15 bins) and the confidences themselves."""
    probs = train.predict_logits(model, x).softmax(-1)
    confidence = probs.max(-1).values
    return {"accuracy": (probs.argmax(-1) == y).float().mean().item(), "mean confidence": confidence.mean().item(),
            "ECE": expected_calibration_error(probs, y), "confidence": confidence.cpu().numpy()}


def digits_smoothing_runs(smoothing: float = 0.1, epochs: int = 20, width: int = 256, seed: int = 0) -> dict[str, Run]:
    """An easy task (digits): the same MLP trained with and without label smoothing."""
    from dataclasses import replace

    check_float("smoothing", smoothing, 0.0, 0.5, lo_open=True)
    data = datasets.digits(seed=seed)
    base = Recipe(width=width, epochs=epochs)
    return {"no smoothing": train_recipe(data, base, seed),
            f"smoothing {smoothing:g}": train_recipe(data, replace(base, label_smoothing=smoothing), seed)}


def plot_confidences(panels: dict[str, dict[str, Run]], data_by_panel: dict[str, datasets.Splits]):
    """Histograms of test-set top-class confidence, one panel per task, one line per model."""
    fig, axes = plotting.figure("Label smoothing: confidence on the test set", "top-class confidence (probability)",
                                "examples (fraction)", ncols=len(panels), figsize=(5.2 * len(panels), 3.8))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, (task, runs) in zip(axes, panels.items()):
        data = data_by_panel[task]
        for name, run in runs.items():
            s = confidence_summary(run.model, data.x_test, data.y_test)
            weights = np.full(len(s["confidence"]), 1 / len(s["confidence"]))
            ax.hist(s["confidence"], bins=20, range=(0, 1), weights=weights, histtype="step", lw=1.8,
                    label=f"{name}: acc {s['accuracy']:.2f}, mean conf {s['mean confidence']:.2f}, ECE {s['ECE']:.3f}")
        ax.set_title(task)
        ax.legend(fontsize=7, loc="upper left")
    return fig


# --------------------------------------------------------------------------- memorisation
def shuffled_labels(data: datasets.Splits, seed: int = 0) -> datasets.Splits:
    """``data`` with the training labels randomly permuted (validation and test keep true labels)."""
    from dataclasses import replace

    gen = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    order = torch.randperm(len(data.y_train), generator=gen).to(data.y_train.device)
    return replace(data, y_train=data.y_train[order])


def memorisation_runs(width: int = 256, max_epochs: int = 200, target: float = 0.99, seed: int = 0,
                      val_fraction: float = 0.3) -> dict[str, Run]:
    """Zhang et al. (2017): the same MLP fits true and random digits labels until ``target`` train accuracy."""
    check_int("width", width, 8, MAX_WIDTH)
    check_int("max_epochs", max_epochs, 1, MAX_EPOCHS)
    data = datasets.digits(val_fraction=val_fraction, test_fraction=val_fraction, seed=seed)
    runs = {}
    for name, split in (("true labels", data), ("random labels", shuffled_labels(data, seed))):
        torch.manual_seed(seed)
        model = models.mlp(data.n_features, data.n_classes, width=width, depth=2)
        history = train.fit(model, split, epochs=max_epochs, lr=1e-3, batch_size=64,
                            callbacks=[StopAtTrainAccuracy(target)], seed=seed)
        loss, acc = train.evaluate(model, data.x_test, data.y_test)
        runs[name] = Run(Recipe(width=width, epochs=max_epochs, batch_size=64), model, history, acc, loss,
                         float("nan"), len(split.y_train))
    return runs


def plot_memorisation(runs: dict[str, Run]):
    """Training accuracy per epoch with true and random labels, and test accuracy of each."""
    fig, ax = plotting.figure("The same network memorises random labels, only later",
                              "epoch", "accuracy (fraction)")
    for color, (name, run) in zip(plotting.PALETTE, runs.items()):
        ax.plot(run.history.epoch, run.history.train_acc, color=color, label=f"{name}: train")
        ax.axhline(run.test_acc, color=color, ls=":", label=f"{name}: test (true labels)")
    ax.axhline(0.1, color="black", lw=0.8, ls="--", label="chance (10 classes)")
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- explorer
def overfitting_explorer(dropout: float = 0.0, weight_decay: float = 0.0, n_train: int = 500,
                         label_smoothing: float = 0.0, epochs: int = 40, width: int = 256, seed: int = 0,
                         progress: Callable[[float], None] | None = None):
    """Run-button explorer: train the MNIST-1D MLP with the chosen levers; curves and the gap."""
    check_int("n_train", n_train, 50, 3200)
    recipe = Recipe(width=width, epochs=epochs, dropout=dropout, weight_decay=weight_decay,
                    label_smoothing=label_smoothing)
    data = datasets.mnist1d(n_train=n_train, seed=seed)
    if progress is not None:
        progress(0.1)
    run = train_recipe(data, recipe, seed)
    if progress is not None:
        progress(1.0)
    fig = plotting.learning_curves({"MLP": run.history},
                                   title=f"dropout {dropout:.2f}, weight decay {weight_decay:g}, "
                                         f"{n_train} examples, smoothing {label_smoothing:.2f}")
    final = run.history.final()
    return fig, {"train acc": final["train_acc"], "val acc": final["val_acc"], "test acc": run.test_acc,
                 "gap (train-val acc)": final["gap"], "min val NLL": min(run.history.val_loss),
                 "final val NLL": final["val_loss"], "test ECE": run.test_ece}


# --------------------------------------------------------------------------- exercises
def check_inverted_dropout(fn: Callable[[torch.Tensor, float, bool], torch.Tensor] | None) -> bool:
    """Check a learner's ``fn(x, p, training)`` against ``F.dropout``'s statistics."""
    x = torch.randn(100_000) + 1.0
    try:
        out = fn(x, 0.3, True) if fn is not None else None
    except NotImplementedError:
        out = None
    if out is None:
        print("Not attempted yet: implement inverted_dropout(x, p, training) and run this cell again.")
        return False
    assert isinstance(out, torch.Tensor) and out.shape == x.shape, \
        "Return a tensor with the same shape as x."
    zeros = (out == 0).float().mean().item()
    assert abs(zeros - 0.3) < 0.01, f"About a fraction p of units should be zeroed; you zeroed {zeros:.3f}."
    kept = out[out != 0] / x[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7), rtol=1e-4), \
        "Kept units must be scaled by 1/(1-p) (that is what 'inverted' means); yours were scaled differently."
    reference = F.dropout(x, 0.3, training=True)
    assert abs(out.mean().item() - reference.mean().item()) < 0.02, "The mean should match F.dropout's (about x's mean)."
    assert torch.equal(fn(x, 0.3, False), x), "In eval mode (training=False) dropout must return x unchanged."
    second = fn(x, 0.3, True)
    assert not torch.equal(second, out), "Draw a fresh random mask on every call."
    print(f"Correct: zeroed {zeros:.3f} of units, kept ones scaled by 1/(1-p), mean {out.mean():.3f} "
          f"vs F.dropout {reference.mean():.3f}, identity in eval mode.")
    return True


LEVER_CHOICES = ("dropout", "weight decay", "shift augmentation", "mixup", "label smoothing",
                 "early stopping", "smaller model")


def check_lever_choice(choice: set[str] | None, n_train: int = 500, epochs: int = 40, seed: int = 0) -> bool:
    """Check the levers chosen for the scenario by training with them and comparing with the baseline.

    Scenario: 500 labelled signals whose patterns can appear at any position; the MLP reaches
    100% training accuracy but about a third on validation. The right answer includes
    shift augmentation (it encodes what is known about the data), and the run must gain
    more than 0.05 test accuracy over the baseline (piling noise levers on top can underfit).
    """
    if choice is None:
        print("Not attempted yet: set my_levers to a set of lever names and run this cell again.")
        return False
    choice = set(choice)
    unknown = choice - set(LEVER_CHOICES)
    if unknown or not choice:
        raise ValueError(f"choice must be a non-empty set of {list(LEVER_CHOICES)}, got {sorted(unknown) or choice}")
    base = Recipe(width=256, epochs=epochs)
    levers = dict(dropout=0.5 if "dropout" in choice else 0.0,
                  weight_decay=3.0 if "weight decay" in choice else 0.0,
                  shift=4 if "shift augmentation" in choice else 0,
                  mixup_alpha=0.4 if "mixup" in choice else 0.0,
                  label_smoothing=0.1 if "label smoothing" in choice else 0.0,
                  patience=10 if "early stopping" in choice else None,
                  width=32 if "smaller model" in choice else 256)
    from dataclasses import replace

    data = datasets.mnist1d(n_train=n_train, seed=seed)
    baseline, chosen = train_recipe(data, base, seed), train_recipe(data, replace(base, **levers), seed)
    gain = chosen.test_acc - baseline.test_acc
    print(f"baseline test accuracy {baseline.test_acc:.3f}; with {sorted(choice)}: {chosen.test_acc:.3f} ({gain:+.3f})")
    assert "shift augmentation" in choice, (
        "That choice does not buy much accuracy here. Re-read the scenario: what do you know about where "
        "the patterns sit in each signal, and which lever turns that knowledge into more training data?")
    assert gain > 0.05, (
        "Shift augmentation is the right idea, but the levers you stacked on top fight it: with this short "
        "training budget the extra noise or penalty underfits. Try fewer levers.")
    print("Correct: the lever that encodes what you know about the data pays most; the others tune the rest.")
    return True


LAYERS = {"more data (4x)": "data", "shift augmentation": "data", "smaller model": "model",
          "weight decay": "objective", "label smoothing": "objective", "dropout": "training",
          "early stopping": "training", "baseline": "—"}


def layered_table(runs: dict[str, Run]) -> str:
    """The lever results grouped by layer (data, model, objective, training) as a Markdown table."""
    base = runs["baseline"]
    order = sorted(runs, key=lambda name: list(LAYERS.values()).index(LAYERS.get(name, "—")))
    lines = ["| layer | lever | test accuracy | change vs baseline | test NLL (nats) |", "|---|---|---|---|---|"]
    for name in order:
        run = runs[name]
        lines.append(f"| {LAYERS.get(name, '—')} | {name} | {run.test_acc:.3f} | {run.test_acc - base.test_acc:+.3f} | "
                     f"{run.test_nll:.2f} |")
    return "\n".join(lines)
