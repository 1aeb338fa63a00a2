"""Notebook 08, part 2: the models of the capstone, what they cost to serve, and how they are shipped.

Everything here takes plain arrays (features, labels, row indices), so it does not depend on how the
messages were generated: training the MLPs with checkpoints at every epoch, the product-cost table
(quality, latency, throughput, size), the service-level rule that picks the model to ship, temperature
scaling and per-segment confidence thresholds with a statistical bound, and the int8 copy.
"""
from __future__ import annotations

import copy
import math
import pickle
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import models, train
from helpers.data import Splits
from helpers.validation import check_choice, check_float, check_int


def to_splits(x: np.ndarray, rows: Mapping[str, np.ndarray], train_labels: np.ndarray, validation_labels: np.ndarray,
              test_labels: np.ndarray, device: torch.device | str = "cpu", name: str = "support messages") -> Splits:
    """Tensors on ``device`` for :func:`helpers.train.fit`: each split's rows of ``x`` with its labels."""
    def tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

    return Splits(name, tensor(x[rows["train"]], torch.float32), tensor(train_labels[rows["train"]], torch.long),
                  tensor(x[rows["validation"]], torch.float32),
                  tensor(validation_labels[rows["validation"]], torch.long),
                  tensor(x[rows["test"]], torch.float32), tensor(test_labels[rows["test"]], torch.long),
                  int(max(train_labels.max(), test_labels.max()) + 1))


def macro_f1(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """The mean over classes of F1 = 2 precision recall / (precision + recall): every queue counts alike."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    scores = []
    for k in range(n_classes):
        hits = np.sum((predicted == k) & (labels == k))
        claimed, actual = np.sum(predicted == k), np.sum(labels == k)
        scores.append(0.0 if hits == 0 else 2 * hits / (claimed + actual))
    return float(np.mean(scores))


class Snapshots(train.Callback):
    """Keep a copy of the weights after every epoch, so one run can be stopped by several rules afterwards."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_begin(self, model: nn.Module) -> None:
        self.states = [copy.deepcopy(model.state_dict())]                    # epoch 0: before training

    def on_epoch_end(self, model: nn.Module, history: train.History) -> bool:
        self.states.append(copy.deepcopy(model.state_dict()))
        return False


@dataclass
class Run:
    """One trained MLP, its history, and its weights at every epoch."""

    model: nn.Module
    history: train.History
    snapshots: Snapshots = field(repr=False)

    def epoch_by(self, rule: str) -> int:
        """The epoch early stopping would keep: best validation accuracy, lowest validation loss, or the last."""
        check_choice("rule", rule, STOP_RULES)
        trained = slice(1, None)                                              # epoch 0 is the untrained net
        if rule == "validation accuracy":
            return 1 + int(np.argmax(self.history.val_acc[trained]))
        if rule == "validation loss":
            return 1 + int(np.argmin(self.history.val_loss[trained]))
        return self.history.epoch[-1]

    def at(self, epoch: int) -> nn.Module:
        """A copy of the model with the weights it held after ``epoch``."""
        check_int("epoch", epoch, 0, len(self.snapshots.states) - 1)
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.snapshots.states[epoch])
        return model.eval()


BATCH_SIZE = 256
STOP_RULES = ("validation accuracy", "validation loss", "last epoch")


def train_mlp(splits: Splits, width: int, epochs: int, lr: float, seed: int, dropout: float = 0.0,
              weight_decay: float = 0.0, progress=None) -> Run:
    """A two-hidden-layer MLP trained with Adam (AdamW when ``weight_decay`` > 0); the returned model
    holds the weights of its best validation-accuracy epoch."""
    torch.manual_seed(seed)
    model = models.mlp(splits.n_features, splits.n_classes, width=width, depth=2, dropout=dropout)
    snapshots = Snapshots()
    history = train.fit(model, splits, epochs=epochs, lr=lr, batch_size=BATCH_SIZE, weight_decay=weight_decay,
                        optimizer="adamw" if weight_decay > 0 else "adam", callbacks=[snapshots],
                        progress=progress, seed=seed)
    run = Run(model, history, snapshots)
    model.load_state_dict(snapshots.states[run.epoch_by("validation accuracy")])
    return run


@torch.no_grad()
def loss_by_group(run: Run, x: torch.Tensor, labels: torch.Tensor, group: np.ndarray) -> dict[str, np.ndarray]:
    """Validation cross-entropy after every epoch, over all messages and within each group of ``group``
    (a boolean mask: True for one group, False for the other)."""
    mask = torch.as_tensor(group, device=x.device)
    losses: dict[str, list[float]] = {"all": [], "True": [], "False": []}
    for epoch in range(len(run.snapshots.states)):
        per_message = functional.cross_entropy(run.at(epoch).to(x.device)(x), labels, reduction="none")
        losses["all"].append(per_message.mean().item())
        losses["True"].append(per_message[mask].mean().item())
        losses["False"].append(per_message[~mask].mean().item())
    return {name: np.array(values) for name, values in losses.items()}


class Ensemble(nn.Module):
    """The average of its members' predicted probabilities, returned as log-probabilities (logits)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([functional.softmax(member(x), dim=-1) for member in self.members])  # (members, B, C)
        return probs.mean(dim=0).log()


def train_linear(splits: Splits, epochs: int, lr: float, seed: int, progress=None) -> nn.Module:
    """Multinomial logistic regression in PyTorch: one linear layer trained with Adam on cross-entropy."""
    torch.manual_seed(seed)
    model = nn.Linear(splits.n_features, splits.n_classes)
    train.fit(model, splits, epochs=epochs, lr=lr, batch_size=128, progress=progress, seed=seed)
    return model.eval()


def quantize(model: nn.Module) -> nn.Module:
    """An int8 copy on the CPU: weights stored in 8 bits, activations quantized on the fly per batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                       # deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8)


@dataclass(frozen=True)
class Served:
    """A model as a service sees it: probabilities for a float32 batch, and bytes to store it."""

    name: str
    predict_proba: Callable[[np.ndarray], np.ndarray]
    size_bytes: int


def serve_torch(name: str, model: nn.Module) -> Served:
    """A copy of a PyTorch model served on the CPU, one thread, in inference mode."""
    model = copy.deepcopy(model).cpu().eval()

    def predict_proba(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return functional.softmax(model(torch.from_numpy(x)), dim=-1).numpy()

    return Served(name, predict_proba, models.serialized_size(model))


def serve_sklearn(name: str, model) -> Served:
    """A scikit-learn model; its size is its pickle (a nearest-neighbour model pickles its data)."""
    return Served(name, model.predict_proba, len(pickle.dumps(model)))


def call_times(fns: Mapping[str, Callable[[np.ndarray], object]], inputs: Sequence[np.ndarray],
               block: int = 5) -> dict[str, np.ndarray]:
    """Wall-clock seconds of single calls, interleaved in rounds: each model answers ``block`` inputs, then
    the next model the same inputs, and so on.

    Each model's turn starts with one untimed call, so its weights are back in the CPU's caches after the
    other models ran (as in a service that runs one model all day). A busy machine slows whichever call it
    interrupts; interleaving spreads that over all models alike, and the *fastest* call of each model (what
    the work itself costs) stays stable even under heavy load.
    """
    check_int("block", block, 1, 10_000)
    if not fns or not inputs:
        raise ValueError("fns and inputs must each hold at least one entry")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for start in range(0, len(inputs), block):
        for name, fn in fns.items():
            fn(inputs[start])                                                 # untimed: warm the caches
            for x in inputs[start:start + block]:
                began = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - began)
    return {name: np.array(values) for name, values in times.items()}


def cost_table(served: Sequence[Served], x_test: np.ndarray, labels: np.ndarray, n_classes: int,
               single_calls: int = 200, batch_calls: int = 20, batch_size: int = 256) -> list[dict]:
    """Quality and cost of each served model on the CPU: test accuracy and macro-F1, latency of one
    message (median, 95th percentile and fastest call), throughput in batches of ``batch_size``, size."""
    check_int("single_calls", single_calls, 5, 100_000)
    check_int("batch_calls", batch_calls, 1, 10_000)
    check_int("batch_size", batch_size, 2, 100_000)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    rng = np.random.default_rng(0)
    singles = [x_test[i:i + 1] for i in rng.integers(0, len(x_test), single_calls)]
    batches = [x_test[rng.integers(0, len(x_test), batch_size)] for _ in range(batch_calls)]
    fns = {model.name: model.predict_proba for model in served}
    one, many = call_times(fns, singles, block=5), call_times(fns, batches, block=2)
    rows = []
    for model in served:
        predicted = model.predict_proba(x_test).argmax(axis=1)
        rows.append({"model": model.name, "accuracy": float(np.mean(predicted == labels)),
                     "macro-F1": macro_f1(predicted, labels, n_classes),
                     "p50 ms": 1e3 * float(np.median(one[model.name])),
                     "p95 ms": 1e3 * float(np.percentile(one[model.name], 95)),
                     "fastest ms": 1e3 * float(one[model.name].min()),
                     "messages/s at 256": batch_size / float(many[model.name].min()),
                     "size kB": model.size_bytes / 1e3})
    return rows


def ship(table: Sequence[Mapping], p95_budget_ms: float, tolerance: float) -> tuple[str | None, str]:
    """The service-level rule: among models whose p95 latency meets the budget, ship the cheapest one
    (lowest median latency) whose macro-F1 is within ``tolerance`` of the best of them."""
    check_float("p95_budget_ms", p95_budget_ms, 0.0, 1e6, lo_open=True)
    check_float("tolerance", tolerance, 0.0, 1.0)
    fast = [row for row in table if row["p95 ms"] <= p95_budget_ms]
    if not fast:
        return None, f"no model answers 95% of single requests within {p95_budget_ms:g} ms"
    best = max(row["macro-F1"] for row in fast)
    good = [row for row in fast if row["macro-F1"] >= best - tolerance]
    chosen = min(good, key=lambda row: row["p50 ms"])
    return chosen["model"], (f"{len(fast)} of {len(table)} models meet p95 <= {p95_budget_ms:g} ms; "
                             f"{chosen['model']} is the cheapest within {tolerance:g} macro-F1 of the best of them")


def ship_explorer(p95_budget_ms: float = 1.0, tolerance: float = 0.01, table: Sequence[Mapping] = ()):
    """Explorer: a latency budget and a quality tolerance decide which model of the cost table ships."""
    from helpers import plotting

    if not table:
        raise ValueError("table must hold the rows of cost_table")
    shipped, reason = ship(table, p95_budget_ms, tolerance)
    fig, ax = plotting.figure("Which model ships under the service-level rule",
                              "p95 latency of one message on this CPU (ms, log scale)", "macro-F1 on the future")
    colors = {"ships": plotting.PALETTE[2], "meets the budget": plotting.PALETTE[0], "too slow": "#999999"}
    for number, row in enumerate(table, start=1):
        status = ("ships" if row["model"] == shipped else
                  "meets the budget" if row["p95 ms"] <= p95_budget_ms else "too slow")
        ax.scatter(row["p95 ms"], row["macro-F1"], s=120 if status == "ships" else 40, color=colors[status],
                   zorder=3, label=f"{number}. {row['model']} ({status})")
        ax.annotate(str(number), (row["p95 ms"], row["macro-F1"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.axvline(p95_budget_ms, color="black", ls=":", lw=1, label="latency budget")
    ax.set_xscale("log")
    latencies = [row["p95 ms"] for row in table] + [p95_budget_ms]
    ax.set_xlim(min(latencies) / 2, max(latencies) * 2)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=8)
    scores = [row["macro-F1"] for row in table]
    middle = (max(scores) + min(scores)) / 2
    ax.set_ylim(min(min(scores), middle - 0.1) - 0.02, max(max(scores), middle + 0.1) + 0.02)
    numbers = {"ships": shipped or "nothing", "why": reason}
    if shipped is None:
        numbers["note"] = f"No model meets a p95 budget of {p95_budget_ms:g} ms: relax it or make a model cheaper."
    return fig, numbers


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits divided by ``temperature`` (rows sum to 1)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of ``labels`` under softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)

    def nll(log_temperature: float) -> float:
        probs = softmax(logits, math.exp(log_temperature))
        return -float(np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-300))))

    return math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins by their size."""
    check_int("bins", bins, 1, 1000)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(np.mean(predicted[inside] == labels[inside]) - confidence[inside].mean())
    return float(gap)


ROUTING_RULES = ("point estimate", "Wilson lower bound")


def wilson_lower(successes: np.ndarray, trials: np.ndarray, z: float = 1.96) -> np.ndarray:
    """Wilson's (1927) lower confidence bound on a success rate: 95% sure the true rate is above it (z=1.96).

    With few trials it sits well below the observed rate; with many it approaches it.
    """
    successes, trials = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    if np.any(trials <= 0) or np.any(successes < 0) or np.any(successes > trials):
        raise ValueError("trials must be positive and successes must lie in [0, trials]")
    rate = successes / trials
    centre = rate + z**2 / (2 * trials)
    margin = z * np.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2))
    return (centre - margin) / (1 + z**2 / trials)


def routing_threshold(confidence: np.ndarray, correct: np.ndarray, target: float, rule: str) -> float:
    """The lowest confidence at which messages are routed automatically, chosen on validation so that the
    routed messages' accuracy (``rule``: its point estimate or its Wilson lower bound) reaches ``target``.
    Infinite when no threshold does: every message goes to a person."""
    check_float("target", target, 0.0, 1.0)
    check_choice("rule", rule, ROUTING_RULES)
    if len(confidence) == 0:
        return math.inf
    order = np.argsort(-np.asarray(confidence), kind="stable")
    routed = np.arange(1, len(order) + 1)                                     # route the k most confident
    right = np.cumsum(np.asarray(correct, dtype=float)[order])
    accuracy = right / routed if rule == "point estimate" else wilson_lower(right, routed)
    passing = np.flatnonzero(accuracy >= target)
    return float(np.asarray(confidence)[order][passing.max()]) if passing.size else math.inf


def segment_routing(validation: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], segments: Sequence[str],
                    target: float, rule: str) -> list[dict]:
    """Per-segment thresholds chosen on ``validation`` and what they do on ``test``.

    Each mapping holds ``confidence``, ``correct`` (bool) and ``segment`` (index into ``segments``).
    """
    rows = []
    for k, name in enumerate(segments):
        mine = validation["segment"] == k
        threshold = routing_threshold(validation["confidence"][mine], validation["correct"][mine], target, rule)
        later = test["segment"] == k
        routed = later & (test["confidence"] >= threshold)
        rows.append({"segment": name, "rule": rule, "threshold": threshold,
                     "validation messages": int(mine.sum()),
                     "coverage": float(routed.sum() / max(later.sum(), 1)),
                     "routed accuracy": float(test["correct"][routed].mean()) if routed.any() else math.nan,
                     "misrouted": int((routed & ~test["correct"]).sum())})
    return rows


def stopping_figure(run: Run, losses: Mapping[str, np.ndarray]):
    """Left: validation loss per epoch, over all messages, incident copies and ordinary messages.
    Right: validation accuracy, with the epochs each stopping rule keeps."""
    from helpers import plotting

    fig, (left, right) = plotting.figure("What early stopping watches", "epoch", "validation cross-entropy (nats)",
                                         ncols=2, figsize=(10, 3.8))
    epochs = run.history.epoch
    for (name, label), color in zip((("all", "all messages"), ("True", "incident copies"),
                                     ("False", "ordinary messages")), plotting.PALETTE):
        left.plot(epochs, losses[name], color=color, label=label)
    right.plot(epochs, run.history.val_acc, color=plotting.PALETTE[0], label="validation accuracy")
    right.set_ylabel("validation accuracy (fraction)")
    for rule, style in (("validation loss", "--"), ("validation accuracy", ":")):
        for ax in (left, right):
            ax.axvline(run.epoch_by(rule), color="black", ls=style, lw=1,
                       label=f"kept by {rule}" if ax is right else None)
    left.set_yscale("log")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=3, fontsize=8)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, fontsize=8)
    right.set_ylim(0, 1)
    return fig


def reliability_figure(curves: Mapping[str, np.ndarray], labels: np.ndarray, bins: int = 10):
    """Accuracy against confidence in equal-width bins (those with at least 10 messages) for each named set
    of probabilities."""
    from helpers import plotting

    fig, ax = plotting.figure("Reliability on the future (days 300-360)", "confidence (top probability)",
                              "accuracy in the bin (fraction)")
    ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="perfect calibration")
    edges = np.linspace(0, 1, bins + 1)
    for (name, probs), color in zip(curves.items(), plotting.PALETTE):
        confidence, right = probs.max(axis=1), probs.argmax(axis=1) == labels
        which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
        filled = [b for b in range(bins) if np.sum(which == b) >= 10]          # bins with a few messages are noise
        ax.plot([confidence[which == b].mean() for b in filled], [right[which == b].mean() for b in filled],
                "o-", color=color, label=f"{name} (ECE {expected_calibration_error(probs, labels):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def tree_and_neighbours(x: np.ndarray, labels: np.ndarray, seed: int = 0):
    """Gradient-boosted trees (30 rounds of 15-leaf trees) and 30-nearest-neighbour voting by cosine similarity."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    trees = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, learning_rate=0.2, early_stopping=False,
                                           random_state=seed).fit(x, labels)
    neighbours = KNeighborsClassifier(n_neighbors=30, metric="cosine", algorithm="brute").fit(x, labels)
    return trees, neighbours


def logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The model's logits for ``x`` as a NumPy array (eval mode)."""
    return train.predict_logits(model, x).float().cpu().numpy()


def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The model's predicted classes for ``x``."""
    return logits(model, x).argmax(axis=1)
