"""Notebook 03, the levers: one overfitting MLP on MNIST-1D and every lever trained against it.

Everything here trains through :func:`helpers.train.fit` with one :class:`Recipe`: the baseline plus
whichever levers are switched on. Every run is scored on the untouched test split as trained *and*
after temperature scaling fitted on validation (the control that separates a regularizer's gain from
plain recalibration). BatchNorm, the explorer and the lever exercise use the same recipe.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import data as datasets
from helpers import exercises, models, plotting, train
from helpers.progress import Report, share
from helpers.scratch import calibration, regularizers
from helpers.validation import check_choice, check_float, check_int

MAX_EPOCHS, MAX_WIDTH, MAX_TRAIN = 1000, 1024, 3200
LAYERS = {"baseline": "—", "baseline + temperature scaling": "evaluation", "more data (4x)": "data",
          "shift augmentation": "data", "smaller model": "model", "1-D CNN": "model", "weight decay": "objective",
          "label smoothing": "objective", "dropout": "training", "early stopping": "training"}
LAYER_COLOURS = {"data": plotting.PALETTE[0], "model": plotting.PALETTE[1], "objective": plotting.PALETTE[2],
                 "training": plotting.PALETTE[3]}


# --------------------------------------------------------------------------- one recipe, one run
@dataclass(frozen=True)
class Recipe:
    """One way to train: the baseline MLP plus whichever levers are switched on."""

    model: str = "mlp"
    width: int = 256
    depth: int = 2
    norm: str | None = None
    channels: int = 32
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
        check_choice("model", self.model, ("mlp", "cnn"))
        check_int("width", self.width, 1, MAX_WIDTH)
        check_int("depth", self.depth, 1, 8)
        check_choice("norm", self.norm, (None, "batch", "layer"))
        check_int("channels", self.channels, 1, 256)
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
    """A trained model, its history, and its test metrics as trained and after temperature scaling."""

    recipe: Recipe
    model: nn.Module
    history: train.History
    test_acc: float
    test_nll: float
    test_ece: float
    temperature: float
    scaled_nll: float
    scaled_ece: float

    def row(self) -> dict[str, float]:
        """The numbers of one line of the lever table, for the weights the model holds (restored ones
        after early stopping)."""
        restored = self.history.restored()
        return {"train acc": restored["train_acc"], "test acc": self.test_acc,
                "train-test gap": restored["train_acc"] - self.test_acc, "test NLL": self.test_nll,
                "NLL after T-scaling": self.scaled_nll, "T": self.temperature, "test ECE": self.test_ece,
                "epoch kept": restored["epoch"]}


class WeightTrack(train.Callback):
    """Record, after every epoch, the L2 norm of all weight matrices and their distance from initialisation."""

    def on_train_begin(self, model: nn.Module) -> None:
        self.start = [p.detach().clone() for p in weight_matrices(model)]
        self.norms, self.distances = [weight_norm(model)], [0.0]

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        with torch.no_grad():
            moved = sum(float(((p - p0) ** 2).sum()) for p, p0 in zip(weight_matrices(model), self.start))
        self.norms.append(weight_norm(model))
        self.distances.append(math.sqrt(moved))
        return False

    def on_train_end(self, model: nn.Module, history: train.History) -> None:
        history.extra["weight_norm"], history.extra["distance_from_init"] = self.norms, self.distances


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices and kernels of ``model`` (biases and normalization gains excluded)."""
    return [p for p in model.parameters() if p.dim() > 1]


def weight_norm(model: nn.Module) -> float:
    """L2 norm of all weight matrices of ``model`` taken together."""
    with torch.no_grad():
        return math.sqrt(sum(float((p ** 2).sum()) for p in weight_matrices(model)))


def build_model(data: datasets.Splits, recipe: Recipe) -> nn.Module:
    """The recipe's network: an MLP (optionally with BatchNorm and dropout) or a 1-D CNN with average pooling."""
    if recipe.model == "cnn":
        return models.cnn1d(data.n_classes, channels=recipe.channels, length=data.n_features, first_stride=1,
                            pooling="average")
    return models.mlp(data.n_features, data.n_classes, width=recipe.width, depth=recipe.depth, norm=recipe.norm,
                      dropout=recipe.dropout)


def _transform(recipe: Recipe, n_classes: int):
    """The recipe's augmentation as a ``train_transform(x, y)`` for :func:`helpers.train.fit` (or None)."""
    if not (recipe.shift or recipe.mixup_alpha):
        return None

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if recipe.shift:
            x = regularizers.random_shift(x, recipe.shift)
        if recipe.mixup_alpha:
            x, y = regularizers.mixup(x, functional.one_hot(y, n_classes).float(), recipe.mixup_alpha)
        return x, y
    return transform


def _loss(recipe: Recipe):
    """Smoothed cross-entropy (from scratch) when asked; mixup's soft targets go to torch's, which takes them."""
    if recipe.mixup_alpha:
        return functools.partial(functional.cross_entropy, label_smoothing=recipe.label_smoothing)
    if recipe.label_smoothing:
        return functools.partial(regularizers.smoothed_cross_entropy, smoothing=recipe.label_smoothing)
    return None


def score(model: nn.Module, data: datasets.Splits) -> dict[str, float]:
    """Test accuracy, NLL and ECE as trained, and NLL and ECE after a temperature fitted on validation."""
    val_logits, test_logits = train.predict_logits(model, data.x_val), train.predict_logits(model, data.x_test)
    temperature = calibration.fit_temperature(val_logits, data.y_val)
    scaled = test_logits / temperature
    return {"test_acc": (test_logits.argmax(-1) == data.y_test).float().mean().item(),
            "test_nll": functional.cross_entropy(test_logits, data.y_test).item(),
            "test_ece": calibration.expected_calibration_error(test_logits.softmax(-1), data.y_test),
            "temperature": temperature, "scaled_nll": functional.cross_entropy(scaled, data.y_test).item(),
            "scaled_ece": calibration.expected_calibration_error(scaled.softmax(-1), data.y_test)}


def train_recipe(data: datasets.Splits, recipe: Recipe, seed: int = 0, progress: Report | None = None) -> Run:
    """Train a fresh network on ``data`` with ``recipe`` (initialised from ``seed``) and score it on test."""
    check_int("seed", seed, 0, 2**32 - 1)
    torch.manual_seed(seed)
    model = build_model(data, recipe).to(data.x_train.device)
    callbacks: list[train.Callback] = [WeightTrack()]
    if recipe.patience is not None:
        callbacks.append(train.EarlyStopping(monitor=recipe.monitor, patience=recipe.patience))
    history = train.fit(model, data, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                        optimizer="adamw", weight_decay=recipe.weight_decay, loss_fn=_loss(recipe),
                        train_transform=_transform(recipe, data.n_classes), callbacks=callbacks, seed=seed,
                        progress=progress)
    return Run(recipe, model, history, **score(model, data))


def learning_curves(history: train.History, title: str):
    """Train (dashed) and validation (solid) loss and accuracy of one run, legends below the panels."""
    fig = plotting.learning_curves({"MLP": history}, title=title)
    for ax in fig.axes:
        plotting.legend_outside(ax, below=True, columns=2)
    return fig


# --------------------------------------------------------------------------- the lever table
def lever_recipes(base: Recipe, *, patience: int, weight_decay: float = 3.0, dropout: float = 0.5,
                  small_width: int = 32, label_smoothing: float = 0.1, shift: int = 4,
                  cnn_channels: int = 32) -> dict[str, Recipe]:
    """The baseline and one recipe per lever, each changing one thing; 'more data' reuses the baseline recipe."""
    return {"baseline": base, "more data (4x)": base, "shift augmentation": replace(base, shift=shift),
            "smaller model": replace(base, width=small_width),
            "1-D CNN": replace(base, model="cnn", channels=cnn_channels),
            "weight decay": replace(base, weight_decay=weight_decay),
            "label smoothing": replace(base, label_smoothing=label_smoothing),
            "dropout": replace(base, dropout=dropout), "early stopping": replace(base, patience=patience)}


def run_levers(n_train: int, base: Recipe, *, patience: int, seed: int = 0, data_factor: int = 4,
               progress: Report | None = None) -> dict[str, Run]:
    """Train the baseline and every lever of :func:`lever_recipes` on the same split and seed.

    'more data' trains the baseline recipe on ``data_factor`` times as many examples (the same
    validation and test sets).
    """
    check_int("n_train", n_train, 20, MAX_TRAIN)
    check_int("data_factor", data_factor, 2, 16)
    small = datasets.mnist1d(n_train=n_train, seed=seed)
    big = datasets.mnist1d(n_train=min(data_factor * n_train, MAX_TRAIN), seed=seed)
    recipes = lever_recipes(base, patience=patience)
    runs = {}
    for i, (name, recipe) in enumerate(recipes.items()):
        part = share(progress, i / len(recipes), (i + 1) / len(recipes))
        runs[name] = train_recipe(big if name.startswith("more data") else small, recipe, seed, progress=part)
    return runs


def lever_rows(runs: dict[str, Run]) -> list[dict[str, object]]:
    """One row per lever for :func:`helpers.tables.show`, with the temperature-scaled baseline as a reference row."""
    base = runs["baseline"]
    rows = []
    for name, run in runs.items():
        row = run.row()
        rows.append({"layer": LAYERS.get(name, "—"), "lever": name, **row,
                     "change in test acc": run.test_acc - base.test_acc})
        if name == "baseline":
            rows.append({**rows[-1], "layer": LAYERS["baseline + temperature scaling"],
                         "lever": "baseline + temperature scaling", "test NLL": base.scaled_nll,
                         "test ECE": base.scaled_ece, "T": 1.0, "NLL after T-scaling": base.scaled_nll})
    columns = ["layer", "lever", "train acc", "test acc", "change in test acc", "test NLL", "NLL after T-scaling",
               "test ECE", "epoch kept"]
    return [{column: row[column] for column in columns} for row in rows]


def plot_levers(runs: dict[str, Run]):
    """Test accuracy (sorted) and test NLL as trained and after temperature scaling, coloured by layer."""
    levers = [name for name in runs if name != "baseline"]
    fig, (ax_acc, ax_nll) = plotting.figure(f"{len(levers)} levers against one overfitting MLP (MNIST-1D test set)",
                                            "accuracy on the test set (fraction)", "lever", ncols=2, figsize=(12, 4.6))
    base = runs["baseline"]
    by_acc = sorted(levers, key=lambda name: runs[name].test_acc)
    colours = [LAYER_COLOURS[LAYERS[name]] for name in by_acc]
    ax_acc.barh(by_acc, [runs[name].test_acc for name in by_acc], color=colours)
    ax_acc.axvline(base.test_acc, color="black", ls=":", lw=1.2)
    ax_acc.set_title("test accuracy (dotted: baseline)")
    by_nll = sorted(levers, key=lambda name: -runs[name].scaled_nll)
    positions = np.arange(len(by_nll))
    ax_nll.barh(positions + 0.2, [runs[name].test_nll for name in by_nll], 0.4, color="#cccccc", label="as trained")
    ax_nll.barh(positions - 0.2, [runs[name].scaled_nll for name in by_nll], 0.4,
                color=[LAYER_COLOURS[LAYERS[name]] for name in by_nll],
                label="after temperature scaling (colour: layer)")
    ax_nll.axvline(base.scaled_nll, color="black", ls="--", lw=1.2, label="baseline + temperature scaling")
    ax_nll.axvline(base.test_nll, color="black", ls=":", lw=1.2, label="baseline as trained")
    ax_nll.set_yticks(positions, by_nll)
    ax_nll.set_xlabel("NLL on the test set (nats; lower is better)")
    ax_nll.set_title("test NLL")
    for layer in ("data", "model", "objective", "training"):
        ax_acc.barh([0], [0], color=LAYER_COLOURS[layer], label=f"{layer} lever")
    plotting.legend_outside(ax_acc, below=True, columns=4)
    plotting.legend_outside(ax_nll, below=True, columns=2)
    return fig


def size_sweep(sizes: Sequence[int], base: Recipe, seed: int = 0,
               known: dict[int, Run] | None = None) -> dict[int, Run]:
    """Train the baseline recipe on several training-set sizes (reusing the runs in ``known``)."""
    out = dict(known or {})
    for n in sizes:
        check_int("sizes", n, 20, MAX_TRAIN)
        if n not in out:
            out[n] = train_recipe(datasets.mnist1d(n_train=n, seed=seed), base, seed)
    return dict(sorted(out.items()))


def plot_size_sweep(sweep: dict[int, Run]):
    """Train and test accuracy against training-set size, with a tick at every size."""
    fig, ax = plotting.figure("More data: test accuracy climbs while train accuracy stays at the top",
                              "training examples (count, log scale)", "accuracy (fraction)")
    sizes = list(sweep)
    ax.plot(sizes, [run.history.final()["train_acc"] for run in sweep.values()], "o--", label="train")
    ax.plot(sizes, [run.test_acc for run in sweep.values()], "o-", label="test")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_ylim(0, 1.05)
    plotting.legend_outside(ax)
    return fig


def overfitting_numbers(history: train.History) -> dict[str, float]:
    """Where validation loss bottoms out, how far it rises after, and the final accuracy gap."""
    best = int(np.argmin(history.val_loss))
    return {"best val-loss epoch": history.epoch[best], "min val loss": history.val_loss[best],
            "final val loss": history.val_loss[-1], "val-loss rise": history.val_loss[-1] - history.val_loss[best],
            "final train loss": history.train_loss[-1], "gap (train-val acc)": history.final()["gap"]}


def plot_dropout_vs_decay(runs: dict[str, Run]):
    """Validation accuracy, validation NLL, weight norm and weight histograms of the runs, side by side."""
    import matplotlib.pyplot as plt

    plotting.use_style()
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    fig.suptitle("Dropout vs weight decay on the same overfitting MLP")
    panels = [("val_acc", "validation accuracy (fraction)"), ("val_loss", "validation NLL (nats)")]
    for ax, (metric, label) in zip(axes[0], panels):
        for name, run in runs.items():
            ax.plot(run.history.epoch, getattr(run.history, metric), label=name)
        ax.set(xlabel="epoch", ylabel=label, title=label.split(" (")[0])
    ax = axes[1][0]
    for name, run in runs.items():
        ax.plot(run.history.epoch, run.history.extra["weight_norm"], label=name)
    ax.set(xlabel="epoch", ylabel="L2 norm of all weight matrices", title="weight norm")
    ax = axes[1][1]
    for name, run in runs.items():
        values = torch.cat([p.detach().flatten().cpu() for p in weight_matrices(run.model)]).numpy()
        ax.hist(values, bins=120, range=(-0.4, 0.4), histtype="step", density=True, label=name, lw=1.5)
    ax.set(xlabel="weight value", ylabel="density (per unit of weight)", title="distribution of weights", yscale="log")
    plotting.legend_outside(axes[0][1])
    return fig


# --------------------------------------------------------------------------- BatchNorm
def batchnorm_runs(data: datasets.Splits, base: Recipe, batch_sizes: Sequence[int], seed: int = 0,
                   known: dict[tuple[str, int], Run] | None = None) -> dict[tuple[str, int], Run]:
    """The MLP with and without BatchNorm at each batch size (reusing the runs in ``known``)."""
    runs = dict(known or {})
    for batch_size in batch_sizes:
        check_int("batch_sizes", batch_size, 2, len(data.y_train))
        for norm, name in ((None, "no BatchNorm"), ("batch", "BatchNorm")):
            if (name, batch_size) not in runs:
                runs[name, batch_size] = train_recipe(data, replace(base, norm=norm, batch_size=batch_size), seed)
    return runs


@torch.no_grad()
def variance_shift(model: nn.Module, x: torch.Tensor, dropout: float | None = None) -> list[float]:
    """For each BatchNorm layer: the variance its inputs have in eval mode over its running variance (mean over units).

    1 means the running statistics match what evaluation sees; dropout before the layer makes it smaller. With
    ``dropout`` given, return instead the ratio that dropout alone predicts from each unit's eval-mode moments,
    Var h / (E[h^2]/q - E[h]^2), q = 1 - dropout (which ignores the shifts of the layers below).
    """
    ratios: list[float] = []
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    def record(norm: nn.BatchNorm1d, inputs: tuple[torch.Tensor], _output: torch.Tensor) -> None:
        h = inputs[0]                                                                  # (n, width)
        if dropout is None:
            ratios.append((h.var(0) / norm.running_var).mean().item())
        else:
            train_var = (h**2).mean(0) / (1 - dropout) - h.mean(0) ** 2
            ratios.append((h.var(0) / train_var.clamp_min(1e-12)).mean().item())

    hooks = [norm.register_forward_hook(record) for norm in norms]
    was_training = model.training
    model.eval()
    model(x)
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return ratios


def dropout_before_batchnorm(data: datasets.Splits, base: Recipe, depth: int, dropout: float, seed: int = 0) -> dict:
    """An MLP whose dropout feeds the next layer's BatchNorm, scored before and after re-estimating BN statistics."""
    run = train_recipe(data, replace(base, depth=depth, norm="batch", dropout=dropout), seed)
    fixed = regularizers.reestimate_batchnorm(copy.deepcopy(run.model), data.x_train)
    return {"run": run, "fixed": fixed, "shift before": variance_shift(run.model, data.x_test),
            "shift predicted by dropout alone": variance_shift(run.model, data.x_test, dropout),
            "shift after": variance_shift(fixed, data.x_test),
            "test acc after fix": train.evaluate(fixed, data.x_test, data.y_test)[1],
            "test acc re-estimated with dropout on":
                train.evaluate(reestimate_with_dropout_on(run.model, data.x_train), data.x_test, data.y_test)[1]}


@torch.no_grad()
def reestimate_with_dropout_on(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The control for the fix: a copy of ``model`` whose BatchNorm statistics are recomputed exactly on ``x`` in
    train mode, dropout included (so it differs from the trained model only by replacing running averages)."""
    copied = copy.deepcopy(model)
    for norm in (m for m in copied.modules() if isinstance(m, nn.BatchNorm1d)):
        norm.reset_running_stats()
        norm.momentum = None
    copied.train()
    copied(x)
    return copied.eval()



# --------------------------------------------------------------------------- label smoothing
def digits_smoothing_runs(smoothing: float, epochs: int, width: int, seed: int = 0) -> tuple[datasets.Splits, dict]:
    """An easy task (digits): the same MLP trained with and without label smoothing."""
    check_float("smoothing", smoothing, 0.0, 0.5, lo_open=True)
    data = datasets.digits(seed=seed)
    base = Recipe(width=width, epochs=epochs)
    return data, {"no smoothing": train_recipe(data, base, seed),
                  f"smoothing {smoothing:g}": train_recipe(data, replace(base, label_smoothing=smoothing), seed)}


# --------------------------------------------------------------------------- explorer
def overfitting_explorer(dropout: float = 0.0, weight_decay: float = 1e-5, n_train: int = 500,
                         label_smoothing: float = 0.0, epochs: int = 40, width: int = 256, seed: int = 0,
                         progress: Report | None = None):
    """Run-button explorer: train the MNIST-1D MLP with the chosen levers; learning curves and the gap."""
    check_int("n_train", n_train, 50, 2000)
    check_int("epochs", epochs, 1, 200)
    recipe = Recipe(width=width, epochs=epochs, dropout=dropout, weight_decay=weight_decay,
                    label_smoothing=label_smoothing)
    data = datasets.mnist1d(n_train=n_train, seed=seed)
    if progress is not None:
        progress(0.02)
    run = train_recipe(data, recipe, seed, progress=share(progress, 0.02, 1.0) if progress else False)
    title = (f"dropout {dropout:.1f}, weight decay {weight_decay:.2g}, {n_train} examples, "
             f"smoothing {label_smoothing:.2f}")
    fig = learning_curves(run.history, title)
    final = run.history.final()
    numbers = {"train accuracy": final["train_acc"], "validation accuracy": final["val_acc"],
               "test accuracy": run.test_acc, "train-validation gap": final["gap"],
               "lowest validation NLL": min(run.history.val_loss), "final validation NLL": final["val_loss"],
               "test ECE": run.test_ece}
    if final["train_acc"] < 0.2:
        numbers["note"] = (f"The network barely learned: training accuracy {final['train_acc']:.2f} is near chance "
                           "(0.10); the penalty or the noise is too strong for this budget.")
    return fig, numbers


# --------------------------------------------------------------------------- exercise: choose the levers
LEVER_CHOICES = ("dropout", "weight decay", "shift augmentation", "mixup", "label smoothing",
                 "early stopping", "smaller model")


def recipe_for(choice: set[str], base: Recipe, patience: int = 10) -> Recipe:
    """The base recipe with every lever named in ``choice`` switched on."""
    return replace(base, dropout=0.5 if "dropout" in choice else base.dropout,
                   weight_decay=3.0 if "weight decay" in choice else base.weight_decay,
                   shift=4 if "shift augmentation" in choice else base.shift,
                   mixup_alpha=0.4 if "mixup" in choice else base.mixup_alpha,
                   label_smoothing=0.1 if "label smoothing" in choice else base.label_smoothing,
                   patience=patience if "early stopping" in choice else base.patience,
                   width=32 if "smaller model" in choice else base.width)


def check_lever_choice(choice: set[str] | None, baseline: Run, data: datasets.Splits, seed: int = 0,
                       patience: int = 10) -> bool:
    """Train with the learner's levers on ``data`` and compare with the notebook's baseline run; never raises.

    Scenario: 500 labelled signals whose patterns can appear at any position; the MLP reaches 100%
    training accuracy but about a third on validation. The right answer includes shift augmentation
    (it encodes what is known about the data), and the run must gain more than 0.05 test accuracy.
    """
    if choice is None:
        return exercises.not_attempted("set my_levers to a set of lever names")
    unknown = set(choice) - set(LEVER_CHOICES)
    if unknown or not choice:
        return exercises.wrong(f"choose a non-empty set from {list(LEVER_CHOICES)}; not levers here: {sorted(unknown)}")
    chosen = train_recipe(data, recipe_for(set(choice), baseline.recipe, patience), seed)
    gain = chosen.test_acc - baseline.test_acc
    print(f"baseline test accuracy {baseline.test_acc:.3f}; with {sorted(choice)}: {chosen.test_acc:.3f} ({gain:+.3f})")
    if "shift augmentation" not in choice:
        return exercises.wrong("that choice buys little accuracy here.",
                               "What do you know about where the patterns sit in each signal, and which lever turns "
                               "that knowledge into more training data?")
    if gain <= 0.05:
        return exercises.wrong("shift augmentation is the right idea, but the levers stacked on top fight it: with "
                               "this budget the extra noise or penalty underfits.", "Try fewer levers.")
    return exercises.correct("the lever that encodes what you know about the data pays most; the others tune the rest.")


# --------------------------------------------------------------------------- the interview answer
def spoken_answer(runs: dict[str, Run], *, bn_gain: float, variance_seen: float, fix_gain: float,
                  noisy_stopped: float, noisy_ended: float) -> str:
    """The interview answer in about 150 words, quoting this run's numbers (Markdown)."""
    base = runs["baseline"]
    gain = {name: run.test_acc - base.test_acc for name, run in runs.items()}
    final = base.history.final()
    return f"""**"How do you reduce overfitting?"** First confirm it: here training accuracy hit
{final['train_acc']:.2f} while validation sat at {final['val_acc']:.2f}. Then go layer by layer. *Data* first,
because it adds information: 4x more data gained {gain['more data (4x)']:+.2f} test accuracy, a shift augmentation
{gain['shift augmentation']:+.2f}. *Model*: a CNN that builds in the same invariance gained {gain['1-D CNN']:+.2f}.
*Objective and training* (weight decay, smoothing, dropout) moved accuracy a few points; most of their NLL gain was
recalibration, since one temperature took the baseline from {base.test_nll:.2f} to {base.scaled_nll:.2f} nats.
*Evaluation*: a test set no decision touches.

**"Dropout vs BatchNorm?"** Dropout injects noise, an implicit ensemble; BatchNorm standardises with batch
statistics to ease optimisation; its batch noise may regularize mildly, but its {bn_gain:+.2f} here mixes that with
easier optimisation. Dropout before BatchNorm left
evaluation with {variance_seen:.2f} of the expected variance; re-estimating the statistics gained {fix_gain:+.2f}.
Transformers use LayerNorm, which ignores the batch.

**"Early stopping?"** Keep the best-validation weights and stop after a patience: with 40% wrong labels it scored
{noisy_stopped:.2f} against {noisy_ended:.2f}; on clean data it cost accuracy."""
