"""Notebook 03, noise of four kinds: dropout's noise on activations, noise in the labels (and early stopping
against it), selection noise on a validation set, and random labels a network can still memorise.
Also the label-smoothing confidence figure and the inverted-dropout exercise.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from helpers import data as datasets
from helpers import exercises, models, plotting, train
from helpers.scratch import calibration, regularizers
from helpers.validation import check_float, check_int


# --------------------------------------------------------------------------- dropout's noise
def dropout_statistics(p: float, n: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Zero-mean Gaussian activations through the from-scratch inverted dropout and through ``nn.Dropout``.

    Returns the share zeroed, the means, and the train/eval variance ratio of each, with the theory 1/(1-p).
    """
    check_float("p", p, 0.0, 0.95)
    check_int("n", n, 1000, 5_000_000)
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    ours = regularizers.inverted_dropout(x, p, generator=torch.Generator().manual_seed(seed + 1))
    torch.manual_seed(seed)
    theirs = nn.Dropout(p).train()(x)
    return {"p": p, "share zeroed (ours)": (ours == 0).float().mean().item(),
            "share zeroed (nn.Dropout)": (theirs == 0).float().mean().item(),
            "mean train (ours)": ours.mean().item(), "mean eval": x.mean().item(),
            "variance ratio train/eval (ours)": (ours.var() / x.var()).item(),
            "variance ratio train/eval (nn.Dropout)": (theirs.var() / x.var()).item(), "theory 1/(1-p)": 1 / (1 - p)}


def variance_shift_theory(mean: float, second_moment: float, p: float) -> float:
    """Eval-mode variance over train-mode variance of a unit with moments E[h], E[h^2] after inverted dropout.

    Train mode: E[h~] = E[h] and E[h~^2] = E[h^2]/q, so the ratio is Var h / (E[h^2]/q - E[h]^2), q = 1 - p.
    For zero-mean h it is q; for ReLU of a standard Gaussian (E[h] = 1/sqrt(2 pi), E[h^2] = 1/2) it is smaller.
    """
    check_float("p", p, 0.0, 0.95)
    check_float("second_moment", second_moment, 0.0, math.inf, lo_open=True)
    keep = 1 - p
    return (second_moment - mean**2) / (second_moment / keep - mean**2)


RELU_MEAN, RELU_SECOND_MOMENT = 1 / math.sqrt(2 * math.pi), 0.5   # moments of ReLU(z), z ~ N(0, 1)


def dropout_explorer(dropout: float = 0.5):
    """Live explorer: one ReLU unit's activations under dropout in train and eval mode, and the variance shift a
    BatchNorm layer after dropout sees (measured points on the zero-mean and ReLU theory curves)."""
    p = check_float("dropout", dropout, 0.0, 0.95)
    h = torch.randn(20_000, generator=torch.Generator().manual_seed(0)).clamp_min(0)   # ReLU outputs, (n,)
    train_mode = regularizers.inverted_dropout(h, p, generator=torch.Generator().manual_seed(1))
    measured = (h.var() / train_mode.var()).item()        # what BatchNorm sees in eval over what it learned
    fig, (ax_hist, ax_ratio) = plotting.figure(f"Dropout p = {p:.2f} on ReLU units: same mean, larger variance "
                                               "in training", "activation value", "density (per unit of activation)",
                                               ncols=2, figsize=(11, 4.4))
    ax_hist.hist(train_mode.numpy(), bins=80, range=(0, 8), density=True, alpha=0.6,
                 label="train mode (spike at 0: dropped and inactive units)")
    ax_hist.hist(h.numpy(), bins=80, range=(0, 8), density=True, histtype="step", lw=1.8, label="eval mode (identity)")
    ax_hist.set_yscale("log")
    plotting.legend_outside(ax_hist, below=True)
    rates = np.linspace(0.0, 0.9, 46)
    ax_ratio.plot(rates, 1 - rates, label="zero-mean inputs: q = 1-p")
    ax_ratio.plot(rates, [variance_shift_theory(RELU_MEAN, RELU_SECOND_MOMENT, r) for r in rates],
                  label="ReLU inputs: Var h / (E[h²]/q - E[h]²)")
    ax_ratio.plot([p], [measured], "o", color="black", label="measured here (ReLU inputs)")
    ax_ratio.set(xlabel="dropout rate p", ylabel="eval / running variance at BatchNorm", ylim=(0, 1.05))
    plotting.legend_outside(ax_ratio, below=True)
    theory = variance_shift_theory(RELU_MEAN, RELU_SECOND_MOMENT, p)
    return fig, {"share zeroed by dropout": ((train_mode == 0) & (h > 0)).float().sum().item() / (h > 0).sum().item(),
                 "eval / running variance (measured)": measured, "theory for ReLU inputs": theory,
                 "theory for zero-mean inputs": 1 - p,
                 "BatchNorm output scale in eval": math.sqrt(measured)}


# --------------------------------------------------------------------------- noisy labels and early stopping
def noisy_labels(labels: torch.Tensor, rate: float, n_classes: int, seed: int = 0) -> torch.Tensor:
    """Symmetric label noise: each label is replaced, with probability ``rate``, by one of the other classes."""
    check_float("rate", rate, 0.0, 1.0)
    check_int("n_classes", n_classes, 2, 100_000)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    flip = torch.rand(len(labels), generator=generator) < rate
    other = (labels.cpu() + torch.randint(1, n_classes, (len(labels),), generator=generator)) % n_classes
    return torch.where(flip, other, labels.cpu()).to(labels.device)


class Probe(train.Callback):
    """After every epoch: accuracy on clean test data, and how far the weight matrices moved from initialisation."""

    def __init__(self, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
        self.x_test, self.y_test = x_test, y_test

    def on_train_begin(self, model: nn.Module) -> None:
        self.start = [p.detach().clone() for p in model.parameters() if p.dim() > 1]
        self.test_acc, self.distance = [train.evaluate(model, self.x_test, self.y_test)[1]], [0.0]

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        self.test_acc.append(train.evaluate(model, self.x_test, self.y_test)[1])
        with torch.no_grad():
            weights = [p for p in model.parameters() if p.dim() > 1]
            self.distance.append(math.sqrt(sum(float(((p - p0) ** 2).sum()) for p, p0 in zip(weights, self.start))))
        return False


def label_noise_runs(rate: float, width: int, epochs: int, patience: int, seed: int = 0) -> dict[str, object]:
    """Digits with ``rate`` symmetric label noise in train and validation, a clean test set; one MLP trained
    to the end and one stopped early on the (noisy) validation loss, from the same initial weights."""
    check_int("epochs", epochs, 1, 1000)
    clean = datasets.digits(seed=seed)
    noisy = replace(clean, y_train=noisy_labels(clean.y_train, rate, clean.n_classes, seed),
                    y_val=noisy_labels(clean.y_val, rate, clean.n_classes, seed + 1))
    out: dict[str, object] = {"data": noisy, "rate": rate, "n_classes": clean.n_classes,
                              "noise in train": (noisy.y_train != clean.y_train).float().mean().item()}
    for name, callbacks in (("to the end", []), ("early stopping", [train.EarlyStopping("val_loss", patience)])):
        torch.manual_seed(seed)
        model = models.mlp(clean.n_features, clean.n_classes, width=width)
        probe = Probe(clean.x_test, clean.y_test)
        history = train.fit(model, noisy, epochs=epochs, lr=1e-3, batch_size=32, optimizer="adamw",
                            callbacks=[probe, *callbacks], seed=seed)
        out[name] = {"model": model, "history": history, "probe": probe,
                     "test acc": train.evaluate(model, clean.x_test, clean.y_test)[1]}
    return out


def noisy_accuracy(clean_accuracy: float | np.ndarray, rate: float, n_classes: int) -> float | np.ndarray:
    """Expected accuracy against labels with symmetric noise ``rate``: rate/(K-1) + (1 - rate K/(K-1)) clean accuracy.

    A correct prediction scores when the label was not flipped; a wrong one when the label was flipped to exactly
    the predicted class. The map is increasing in the clean accuracy while rate < (K-1)/K, so a noisy validation
    set ranks epochs in the same order as a clean one would, in expectation.
    """
    check_float("rate", rate, 0.0, 1.0)
    check_int("n_classes", n_classes, 2, 100_000)
    return rate / (n_classes - 1) + (1 - rate * n_classes / (n_classes - 1)) * clean_accuracy


def plot_label_noise(result: dict[str, object]):
    """Clean test accuracy and distance from initialisation per epoch, with the epoch early stopping restored,
    and the validation accuracy predicted from the clean test accuracy by :func:`noisy_accuracy`."""
    full, stopped = result["to the end"], result["early stopping"]
    restored = stopped["history"].restored_epoch
    fig, (ax_acc, ax_dist) = plotting.figure("Noisy labels: early stopping keeps the model learned before the noise",
                                             "epoch", "accuracy (fraction)", ncols=2, figsize=(11, 4.4))
    epochs = full["history"].epoch
    ax_acc.plot(epochs, full["history"].train_acc, "--", label="train accuracy (against noisy labels)")
    ax_acc.plot(epochs, full["probe"].test_acc, label="test accuracy (clean labels)")
    ax_acc.plot(epochs, full["history"].val_acc, ":", label="validation accuracy (noisy labels)")
    ax_acc.plot(epochs, noisy_accuracy(np.array(full["probe"].test_acc), result["rate"], result["n_classes"]),
                color="gray", lw=1, label="validation predicted from test: ρ/(K-1) + (1-ρK/(K-1))·test")
    ax_dist.plot(epochs, full["probe"].distance, color=plotting.PALETTE[3], label="trained to the end")
    ax_dist.set_ylabel("distance from the initial weights (L2)")
    ax_dist.set_title("grows every epoch, so stopping earlier always means closer", fontsize=10)
    for ax in (ax_acc, ax_dist):
        ax.axvline(restored, color="black", ls="--", lw=1.2, label=f"restored by early stopping (epoch {restored})")
        plotting.legend_outside(ax, below=True)
    ax_acc.set_ylim(0, 1.02)
    return fig


# --------------------------------------------------------------------------- early stopping: two criteria
def plot_early_stopping(history: train.History, restored: dict[str, int]):
    """The unstopped validation curves with the epoch each criterion restored."""
    fig, (ax_loss, ax_acc) = plotting.figure("Where each early-stopping criterion stops (same patience)", "epoch",
                                             "validation NLL (nats)", ncols=2, figsize=(11, 3.8))
    ax_loss.plot(history.epoch, history.val_loss, color="gray", label="no stopping")
    ax_acc.plot(history.epoch, history.val_acc, color="gray", label="no stopping")
    ax_acc.set_ylabel("validation accuracy (fraction)")
    for colour, (monitor, epoch) in zip(plotting.PALETTE, restored.items()):
        for ax in (ax_loss, ax_acc):
            ax.axvline(epoch, color=colour, ls="--", label=f"restored by best {monitor} (epoch {epoch})")
    plotting.legend_outside(ax_acc)
    return fig


def spike(history: train.History, epoch: int, window: int = 5) -> float:
    """How far validation accuracy at ``epoch`` stands above the mean of the ``window`` epochs on each side."""
    check_int("window", window, 1, 100)
    i = history.epoch.index(epoch)
    around = history.val_acc[max(0, i - window):i] + history.val_acc[i + 1:i + 1 + window]
    return history.val_acc[i] - float(np.mean(around))


# --------------------------------------------------------------------------- selection noise
def best_of_many(model: nn.Module, data: datasets.Splits, n_candidates: int = 200, noise: float = 0.3,
                 n_val: int = 100, seed: int = 0) -> dict[str, object]:
    """Pick the best of many near-identical models on a small validation set; compare its edge on test.

    The candidates are ``model`` with small random weight perturbations (relative size ``noise``), so
    their true accuracies are alike: the winner's edge over the average candidate on validation is
    selection noise, and the untouched test set shows how much of it is real.
    """
    check_int("n_candidates", n_candidates, 2, 5000)
    check_float("noise", noise, 0.0, 2.0)
    check_int("n_val", n_val, 10, len(data.y_val))
    generator = torch.Generator().manual_seed(seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    x_val, y_val = data.x_val[:n_val], data.y_val[:n_val]
    val_acc, test_acc = [], []
    candidate = copy.deepcopy(model).eval()
    with torch.no_grad():
        for _ in range(n_candidates):
            for name, p in candidate.named_parameters():
                jitter = torch.randn(p.shape, generator=generator).to(p.device)
                p.copy_(base[name] + noise * base[name].std() * jitter)
            val_acc.append((candidate(x_val).argmax(-1) == y_val).float().mean().item())
            test_acc.append((candidate(data.x_test).argmax(-1) == data.y_test).float().mean().item())
    val_acc, test_acc = np.array(val_acc), np.array(test_acc)
    best = int(np.argmax(val_acc))
    # regression to the mean: with val = true + noise and test = true + (less) noise, the expected test edge of a
    # validation winner is var(true)/var(val) of its validation edge; var(test) >= var(true) bounds it from above
    return {"predicted share that survives (at most)": float(test_acc.var() / val_acc.var()),
            "winner's validation accuracy": float(val_acc[best]), "winner's test accuracy": float(test_acc[best]),
            "mean validation accuracy": float(val_acc.mean()), "mean test accuracy": float(test_acc.mean()),
            "validation edge": float(val_acc[best] - val_acc.mean()),
            "test edge": float(test_acc[best] - test_acc.mean()), "val_acc": val_acc, "test_acc": test_acc}


def plot_best_of_many(result: dict[str, object], orderings: int = 100, seed: int = 0):
    """The winner's edge over the average candidate, on validation and on test, against candidates tried,
    averaged over ``orderings`` random orders of the candidates, with the predicted test edge."""
    check_int("orderings", orderings, 1, 10_000)
    fig, ax = plotting.figure("Best of many on validation: the edge is selection noise",
                              "candidates tried (count, log scale)", "edge over the average candidate (accuracy)")
    val_acc, test_acc = result["val_acc"], result["test_acc"]
    tried = np.arange(1, len(val_acc) + 1)
    order = np.argsort(np.random.default_rng(seed).random((orderings, len(val_acc))), axis=1)    # (orderings, n)
    running_best = np.maximum.accumulate(val_acc[order], axis=1)                                 # (orderings, n)
    is_winner = val_acc[order][:, :, None] == running_best[:, None, :]   # (orderings, candidate, tried)
    upto = np.arange(len(val_acc))[:, None] <= np.arange(len(val_acc))[None, :]
    first = np.argmax(is_winner & upto, axis=1)                          # (orderings, tried): index of the winner
    winners = np.take_along_axis(order, first, axis=1)
    val_edge = val_acc[winners].mean(0) - result["mean validation accuracy"]
    ax.plot(tried, val_edge, label=f"winner on validation (mean of {orderings} orders)")
    ax.plot(tried, test_acc[winners].mean(0) - result["mean test accuracy"], label="the same winner on test")
    share = result["predicted share that survives (at most)"]
    ax.plot(tried, share * val_edge, "--", color="gray", label=f"predicted test edge: {share:.2f} x validation edge")
    ax.axhline(0.0, color="black", ls=":", lw=1, label="average candidate")
    ax.set_xscale("log")
    plotting.legend_outside(ax)
    return fig


# --------------------------------------------------------------------------- label smoothing's confidence
def confidence_summary(model: nn.Module, data: datasets.Splits, smoothing: float = 0.1) -> dict[str, object]:
    """Test accuracy, mean top-class confidence, ECE, the share above the smoothing cap, and the confidences."""
    probs = train.predict_logits(model, data.x_test).softmax(-1)
    confidence = probs.max(-1).values
    cap = regularizers.smoothing_cap(smoothing, data.n_classes)
    return {"accuracy": (probs.argmax(-1) == data.y_test).float().mean().item(),
            "mean confidence": confidence.mean().item(),
            "ECE": calibration.expected_calibration_error(probs, data.y_test),
            "share above the cap": (confidence > cap).float().mean().item(), "confidence": confidence.cpu().numpy()}


def plot_confidences(panels: dict[str, tuple[datasets.Splits, dict[str, nn.Module]]], smoothing: float = 0.1):
    """Histograms of top-class confidence on the test set, one panel per task, with the smoothed loss's cap."""
    fig, axes = plotting.figure("Label smoothing: how confident the predictions are (test set)",
                                "top-class confidence (probability)", "share of test examples",
                                ncols=len(panels), figsize=(5.6 * len(panels), 4.6))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, (task, (data, nets)) in zip(axes, panels.items()):
        for name, model in nets.items():
            summary = confidence_summary(model, data, smoothing)
            weights = np.full(len(summary["confidence"]), 1 / len(summary["confidence"]))
            ax.hist(summary["confidence"], bins=20, range=(0, 1), weights=weights, histtype="step", lw=1.8,
                    label=f"{name}: accuracy {summary['accuracy']:.2f}, mean confidence "
                          f"{summary['mean confidence']:.2f}")
        cap = regularizers.smoothing_cap(smoothing, data.n_classes)
        ax.axvline(cap, color="black", ls=":", lw=1.2, label=f"optimum of the smoothed loss, {cap:.2f}")
        ax.set_title(task)
        plotting.legend_outside(ax, below=True)
    return fig


# --------------------------------------------------------------------------- random labels
class StopAtTrainAccuracy(train.Callback):
    """Stop as soon as the training accuracy reaches ``target`` (used to time memorisation)."""

    def __init__(self, target: float = 0.99) -> None:
        self.target = check_float("target", target, 0.0, 1.0, lo_open=True)

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        return history.train_acc[-1] >= self.target


def shuffled_labels(data: datasets.Splits, seed: int = 0) -> datasets.Splits:
    """``data`` with the training labels randomly permuted (validation and test keep their true labels)."""
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    order = torch.randperm(len(data.y_train), generator=generator).to(data.y_train.device)
    return replace(data, y_train=data.y_train[order])


def memorisation_runs(width: int, max_epochs: int, target: float = 0.99, seed: int = 0,
                      val_fraction: float = 0.3) -> dict[str, dict[str, object]]:
    """Zhang et al. (2017): the same MLP fits true and random digits labels until ``target`` train accuracy."""
    check_int("width", width, 8, 1024)
    check_int("max_epochs", max_epochs, 1, 1000)
    data = datasets.digits(val_fraction=val_fraction, test_fraction=val_fraction, seed=seed)
    runs = {}
    for name, split in (("true labels", data), ("random labels", shuffled_labels(data, seed))):
        torch.manual_seed(seed)
        model = models.mlp(data.n_features, data.n_classes, width=width, depth=2)
        history = train.fit(model, split, epochs=max_epochs, lr=1e-3, batch_size=64,
                            callbacks=[StopAtTrainAccuracy(target)], seed=seed)
        runs[name] = {"history": history, "epochs": history.epoch[-1],
                      "test acc": train.evaluate(model, data.x_test, data.y_test)[1]}
    return runs


def plot_memorisation(runs: dict[str, dict[str, object]]):
    """Training accuracy per epoch with true and random labels, and the test accuracy of each."""
    fig, ax = plotting.figure("The same network memorises random labels, only later", "epoch", "accuracy (fraction)")
    for colour, (name, run) in zip(plotting.PALETTE, runs.items()):
        ax.plot(run["history"].epoch, run["history"].train_acc, color=colour, label=f"{name}: train")
        ax.axhline(run["test acc"], color=colour, ls=":", label=f"{name}: test (true labels), {run['test acc']:.3f}")
    ax.axhline(0.1, color="black", lw=0.8, ls="--", label="chance (10 classes), 0.100")
    plotting.legend_outside(ax)
    return fig


# --------------------------------------------------------------------------- exercise: inverted dropout
def check_inverted_dropout(fn: Callable[[torch.Tensor, float, bool], torch.Tensor] | None) -> bool:
    """Check a learner's ``fn(x, p, training)`` against ``nn.Dropout``'s statistics; never raises."""
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0)) + 1.0
    out = exercises.attempt(fn, x, 0.3, True, what="inverted_dropout(x, p, training)")
    if out is exercises.NOT_ATTEMPTED:
        return False
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return exercises.wrong("return a tensor with the same shape as x.")
    zeroed = (out == 0).float().mean().item()
    if abs(zeroed - 0.3) > 0.01:
        return exercises.wrong(f"about a share p = 0.3 of the units should be zeroed; you zeroed {zeroed:.3f}.")
    kept = out[out != 0] / x[out != 0]
    if not torch.allclose(kept, torch.full_like(kept, 1 / 0.7), rtol=1e-4):
        return exercises.wrong("kept units must be scaled by 1/(1-p); that is what 'inverted' means.",
                               "Divide by the keep probability, not by p.")
    evaluated = exercises.attempt(fn, x, 0.3, False, what="inverted_dropout in eval mode")
    if not isinstance(evaluated, torch.Tensor) or not torch.equal(evaluated, x):
        return exercises.wrong("in eval mode (training=False) dropout must return x unchanged.")
    if torch.equal(fn(x, 0.3, True), out):
        return exercises.wrong("draw a fresh random mask on every call.")
    torch.manual_seed(0)
    reference = nn.Dropout(0.3).train()(x)
    return exercises.correct(f"zeroed {zeroed:.3f} of the units, kept ones scaled by 1/(1-p), mean {out.mean():.3f} "
                             f"against nn.Dropout's {reference.mean():.3f}, and the identity in eval mode.")
