"""Notebook 08, part 2: the models of the capstone, what they cost to serve, and how one is chosen to ship.

Everything here takes plain arrays (features, labels, row indices), so it does not depend on how the
messages were generated: training the MLPs with checkpoints at every epoch, the product-cost table
(quality, latency, throughput, size), the service-level rule that picks the model to ship, and the int8 copy.
"""
from __future__ import annotations

import copy
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
              weight_decay: float = 0.0, word_dropout: float = 0.0, progress=None) -> Run:
    """A two-hidden-layer MLP trained with Adam (AdamW when ``weight_decay`` > 0); the returned model
    holds the weights of its best validation-accuracy epoch.

    ``dropout`` zeroes hidden units; ``word_dropout`` zeroes input features (words deleted at random from
    each training message, an augmentation), survivors scaled by 1/(1-p) so evaluation needs no change.
    """
    check_float("word_dropout", word_dropout, 0.0, 0.9)
    torch.manual_seed(seed)
    model = models.mlp(splits.n_features, splits.n_classes, width=width, depth=2, dropout=dropout)
    if word_dropout > 0:
        model = nn.Sequential(nn.Dropout(word_dropout), model)
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
    """A model as a service sees it: probabilities for a float32 batch, bytes to store it, and scores
    whose softmax gives those probabilities (logits, for temperature scaling)."""

    name: str
    predict_proba: Callable[[np.ndarray], np.ndarray]
    size_bytes: int
    logits: Callable[[np.ndarray], np.ndarray]


def serve_torch(name: str, model: nn.Module) -> Served:
    """A copy of a PyTorch model served on the CPU, one thread, in inference mode."""
    model = copy.deepcopy(model).cpu().eval()

    def scores(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).double().numpy()

    def predict_proba(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return functional.softmax(model(torch.from_numpy(x)), dim=-1).numpy()

    return Served(name, predict_proba, models.serialized_size(model), scores)


def serve_sklearn(name: str, model) -> Served:
    """A scikit-learn model; its size is its pickle (a nearest-neighbour model pickles its data). Its logits
    are the decision function where it has one, else log-probabilities (softmax of log p gives back p)."""
    def scores(x: np.ndarray) -> np.ndarray:
        if hasattr(model, "decision_function"):
            return np.asarray(model.decision_function(x), dtype=np.float64)
        return np.log(np.clip(model.predict_proba(x), 1e-9, 1.0))

    return Served(name, model.predict_proba, len(pickle.dumps(model)), scores)


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


P95 = "p95 ms (load-sensitive)"


def cost_table(served: Sequence[Served], x_test: np.ndarray, labels: np.ndarray, n_classes: int,
               ordinary: np.ndarray | None = None, single_calls: int = 200, batch_calls: int = 20,
               batch_size: int = 256) -> list[dict]:
    """Quality and cost of each served model on the CPU: test accuracy (also on the ``ordinary`` rows alone,
    when given) and macro-F1, latency of one message (median, 95th percentile and fastest call), throughput
    in batches of ``batch_size``, size.

    The 95th percentile of single calls on a shared machine measures the machine's other work as much as
    the model: it is reported, but flagged, and the shipping rule does not use it.
    """
    check_int("single_calls", single_calls, 5, 100_000)
    check_int("batch_calls", batch_calls, 1, 10_000)
    check_int("batch_size", batch_size, 2, 100_000)
    if ordinary is not None and np.shape(ordinary) != np.shape(labels):
        raise ValueError(f"ordinary must be a mask of shape {np.shape(labels)}, got {np.shape(ordinary)}")
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    rng = np.random.default_rng(0)
    singles = [x_test[i:i + 1] for i in rng.integers(0, len(x_test), single_calls)]
    batches = [x_test[rng.integers(0, len(x_test), batch_size)] for _ in range(batch_calls)]
    fns = {model.name: model.predict_proba for model in served}
    one, many = call_times(fns, singles, block=5), call_times(fns, batches, block=2)
    rows = []
    for model in served:
        predicted = model.predict_proba(x_test).argmax(axis=1)
        row = {"model": model.name, "accuracy": float(np.mean(predicted == labels))}
        if ordinary is not None:
            row["accuracy, ordinary messages"] = float(np.mean((predicted == labels)[np.asarray(ordinary, bool)]))
        rows.append({**row, "macro-F1": macro_f1(predicted, labels, n_classes),
                     "p50 ms": 1e3 * float(np.median(one[model.name])),
                     P95: 1e3 * float(np.percentile(one[model.name], 95)),
                     "fastest ms": 1e3 * float(one[model.name].min()),
                     "messages/s at 256": batch_size / float(many[model.name].min()),
                     "size kB": model.size_bytes / 1e3})
    return rows


def ship(table: Sequence[Mapping], p50_budget_ms: float, tolerance: float) -> tuple[str | None, str]:
    """The service-level rule: among models whose median single-message latency meets the budget, ship the
    cheapest one (lowest median latency) whose macro-F1 is within ``tolerance`` of the best of them."""
    check_float("p50_budget_ms", p50_budget_ms, 0.0, 1e6, lo_open=True)
    check_float("tolerance", tolerance, 0.0, 1.0)
    fast = [row for row in table if row["p50 ms"] <= p50_budget_ms]
    if not fast:
        return None, f"no model answers half of single requests within {p50_budget_ms:g} ms"
    best = max(row["macro-F1"] for row in fast)
    good = [row for row in fast if row["macro-F1"] >= best - tolerance]
    chosen = min(good, key=lambda row: row["p50 ms"])
    return chosen["model"], (f"{len(fast)} of {len(table)} models meet p50 <= {p50_budget_ms:g} ms; "
                             f"{chosen['model']} is the cheapest within {tolerance:g} macro-F1 of the best of them")


def ship_explorer(p50_budget_ms: float = 0.25, tolerance: float = 0.01, table: Sequence[Mapping] = ()):
    """Explorer: a latency budget and a quality tolerance decide which model of the cost table ships."""
    from helpers import plotting

    if not table:
        raise ValueError("table must hold the rows of cost_table")
    shipped, reason = ship(table, p50_budget_ms, tolerance)
    fig, ax = plotting.figure("Which model ships under the service-level rule",
                              "median latency of one message on this CPU (ms, log scale; bar to p95)",
                              "macro-F1 on the future")
    colors = {"ships": plotting.PALETTE[2], "meets the budget": plotting.PALETTE[0], "too slow": "#999999"}
    for number, row in enumerate(table, start=1):
        status = ("ships" if row["model"] == shipped else
                  "meets the budget" if row["p50 ms"] <= p50_budget_ms else "too slow")
        ax.plot([row["p50 ms"], row[P95]], [row["macro-F1"]] * 2, color=colors[status], lw=1, alpha=0.6)
        ax.scatter(row["p50 ms"], row["macro-F1"], s=120 if status == "ships" else 40, color=colors[status],
                   zorder=3, label=f"{number}. {row['model']} ({status})")
        ax.annotate(str(number), (row["p50 ms"], row["macro-F1"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.axvline(p50_budget_ms, color="black", ls=":", lw=1, label="latency budget")
    ax.set_xscale("log")
    latencies = [row["p50 ms"] for row in table] + [row[P95] for row in table] + [p50_budget_ms]
    ax.set_xlim(min(latencies) / 2, max(latencies) * 2)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=8)
    scores = [row["macro-F1"] for row in table]
    middle = (max(scores) + min(scores)) / 2
    ax.set_ylim(min(min(scores), middle - 0.1) - 0.02, max(max(scores), middle + 0.1) + 0.02)
    numbers = {"ships": shipped or "nothing", "why": reason}
    if shipped is None:
        numbers["note"] = f"No model meets a median budget of {p50_budget_ms:g} ms: relax it or make a model cheaper."
    return fig, numbers


LABEL_DELAY_DAYS = 2 / 24      # a routed message gets its checked label about two hours later
LOOKBACK_DAYS = 2.0


def duplicate_lookup(day: np.ndarray, words: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                     similarity: float = 0.8) -> np.ndarray:
    """For each message in ``rows``: the recorded label of its most similar already-labelled message
    (labelled at least two hours earlier, within the last two days) if the cosine similarity of their
    ``words`` reaches ``similarity``, else -1. ``day`` must be sorted. It reads labels recorded after any
    model was trained: retrieval of fresh labels, not a better reading of the words."""
    check_float("similarity", similarity, 0.0, 1.0)
    if np.any(np.diff(day) < 0) or len(words) != len(day) or len(labels) != len(day):
        raise ValueError("day must be sorted, and words and labels must have one row per day")
    unit = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
    found = np.full(len(rows), -1)
    for k, row in enumerate(rows):
        earlier = slice(np.searchsorted(day, day[row] - LOOKBACK_DAYS),
                        np.searchsorted(day, day[row] - LABEL_DELAY_DAYS))
        if earlier.stop > earlier.start:
            scores = unit[earlier] @ unit[row]                               # (earlier messages,)
            best = int(scores.argmax())
            if scores[best] >= similarity:
                found[k] = labels[earlier.start + best]
    return found


def lookup_table(predicted: np.ndarray, found: np.ndarray, truth: np.ndarray, copies: np.ndarray,
                 n_classes: int) -> list[dict]:
    """Per population (all, incident copies, ordinary): the share the lookup answers, and accuracy and
    macro-F1 of the model alone and with the lookup's answer wherever it has one."""
    combined = np.where(found >= 0, found, predicted)
    rows = []
    for name, mask in (("all messages", np.ones_like(copies, dtype=bool)), ("incident copies", copies),
                       ("ordinary messages", ~copies)):
        rows.append({"population": name, "messages": int(mask.sum()),
                     "answered by the lookup": float(np.mean(found[mask] >= 0)),
                     "accuracy, model": float(np.mean(predicted[mask] == truth[mask])),
                     "accuracy, model + lookup": float(np.mean(combined[mask] == truth[mask])),
                     "macro-F1, model": macro_f1(predicted[mask], truth[mask], n_classes),
                     "macro-F1, model + lookup": macro_f1(combined[mask], truth[mask], n_classes)})
    return rows


def stopping_figure(run: Run, losses: Mapping[str, np.ndarray], future_f1: Mapping[str, float]):
    """Left: validation loss per epoch, over all messages, incident copies and ordinary messages (log scale).
    Right: validation accuracy after training starts, with the epoch each stopping rule keeps and the
    macro-F1 on the future of the weights it keeps (``future_f1``, by rule)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    from helpers import plotting

    fig, (left, right) = plotting.figure("What early stopping watches", "epoch", "validation cross-entropy (nats)",
                                         ncols=2, figsize=(10, 4.0))
    epochs = run.history.epoch
    for (name, label), color in zip((("all", "all messages"), ("True", "incident copies"),
                                     ("False", "ordinary messages")), plotting.PALETTE):
        left.plot(epochs, losses[name], color=color, label=label)
    right.plot(epochs[1:], run.history.val_acc[1:], "o-", color=plotting.PALETTE[0], ms=3,
               label="validation accuracy")
    right.set_ylabel("validation accuracy (fraction)")
    trained = np.asarray(run.history.val_acc[1:])
    low, high = float(trained.min()), float(trained.max())
    pad = max(0.0, 0.1 - (high - low)) / 2                                   # a span of at least 0.1
    right.set_ylim(low - pad - 0.01, high + pad + 0.02)
    for rule, style in (("validation loss", "--"), ("validation accuracy", ":")):
        epoch = run.epoch_by(rule)
        for ax in (left, right):
            ax.axvline(epoch, color="black", ls=style, lw=1, label=f"kept by {rule}")
        right.annotate(f"future macro-F1 {future_f1[rule]:.3f}", (epoch, run.history.val_acc[epoch]),
                       xytext=(6, -14 if rule == "validation loss" else 8), textcoords="offset points", fontsize=8)
    left.set_yscale("log")
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
             if min(map(np.min, losses.values())) / 1.5 <= t <= 1.5 * max(map(np.max, losses.values()))]
    left.yaxis.set_major_locator(FixedLocator(ticks))
    left.yaxis.set_minor_locator(NullLocator())
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=3, fontsize=8)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, fontsize=8)
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
