"""Notebook 08, part 3: the run told as an interview story, the traps table, and the checklist as live questions.

The story and the traps table are filled from the numbers the notebook measured (a :class:`Facts`), so
they change with the seed and the scale. Each checklist question is answered by a small experiment that
runs here and now (each well under a second), never by numbers another notebook recorded.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers import metrics, models
from helpers.exercises import correct, not_attempted, wrong


@dataclass(frozen=True)
class Facts:
    """What the capstone measured, in the words the story needs."""

    messages: int
    random_overstatement: float      # validation minus future accuracy, random split
    time_overstatement: float        # the same for the time split
    random_twins: float              # share of validation messages with a near-copy in training
    flagged: int                     # labels confident learning flagged
    precision_ratio: float           # its precision over "prediction disagrees with label"
    recall_before: float             # chat-refund recall before relabelling
    recall_after: float
    shipped: str
    shipped_f1: float
    shipped_p95_ms: float
    p95_budget_ms: float
    tolerance: float                 # macro-F1 a cheaper model may give up
    best_model: str
    best_f1: float
    ensemble_gain: float             # macro-F1 of the ensemble minus the single MLP's
    ensemble_slowdown: float         # its fastest single-message time over the MLP's
    int8_size_ratio: float
    int8_speedup_batch: float        # at batch 256
    int8_speedup_single: float       # at batch 1
    temperature: float
    ece_before: float
    ece_after: float
    lookup_gain: float               # accuracy added by the duplicate lookup
    loss_epoch: int                  # epoch of lowest validation loss
    accuracy_epoch: int              # epoch of best validation accuracy
    regularizer_change: float        # largest |macro-F1 change| from dropout or weight decay


def points(value: float) -> str:
    """A difference of two fractions in percentage points: 0.132 -> '13 points', 0.01 -> '1 point'."""
    rounded = round(100 * value)
    return f"{rounded} point{'' if abs(rounded) == 1 else 's'}"


def resume_bullet(facts: Facts) -> str:
    """One line for a resume: the data problem found, the fix, the shipped constraint, each with a number."""
    return (f"Built a 5-queue support-message router: found a random split overstated future accuracy by "
            f"{points(facts.random_overstatement)} (incident copies leaked across it), rebuilt a time-based split, "
            f"relabelled {facts.flagged} messages flagged by confident learning (chat-refund recall "
            f"{facts.recall_before:.0%} to {facts.recall_after:.0%}), and shipped {facts.shipped} at p95 "
            f"{facts.shipped_p95_ms:.2f} ms after an ensemble bought {facts.ensemble_gain:+.3f} macro-F1 for "
            f"{facts.ensemble_slowdown:.1f}x the latency.")


def interview_answer(facts: Facts) -> str:
    """A 90-second answer to "describe one model you trained, the data issue that mattered most, and the
    metric trade-off you made" (about 220 words: spoken at 150 words a minute)."""
    if facts.shipped == facts.best_model:
        trade = "it was also the best on macro-F1"
    elif facts.best_f1 - facts.shipped_f1 <= facts.tolerance:
        trade = (f"{facts.best_model} scored {facts.best_f1 - facts.shipped_f1:.3f} higher, inside the tolerance, "
                 f"so the cheaper model won")
    else:
        trade = (f"{facts.best_model} scored {facts.best_f1 - facts.shipped_f1:.3f} higher but missed the "
                 f"{facts.p95_budget_ms:g} ms p95 budget")
    return (
        f"I built a router that sends support messages to one of five queues, trained on a year of "
        f"{facts.messages:,} labelled messages. The data issue that mattered most was leakage: incidents "
        f"produce bursts of near-identical messages, and a random split put copies of the same incident on "
        f"both sides, so validation promised {points(facts.random_overstatement)} more accuracy than the "
        f"future delivered. Splitting by time, training on the past and validating on the next two months, "
        f"brought that gap to {points(abs(facts.time_overstatement))}. "
        f"The second issue was labels: chat messages about refunds were often filed as billing. Confident "
        f"learning on out-of-fold predictions flagged {facts.flagged} labels, with "
        f"{facts.precision_ratio:.1f} times the precision of simply trusting disagreements, and relabelling "
        f"them lifted chat-refund recall from {facts.recall_before:.0%} to {facts.recall_after:.0%}. "
        f"The trade-off was cost against quality. A five-model ensemble added {facts.ensemble_gain:+.3f} "
        f"macro-F1 at {facts.ensemble_slowdown:.1f} times the latency, so my rule was: meet a p95 of "
        f"{facts.p95_budget_ms:g} ms, then take the cheapest model within {facts.tolerance:g} of the best. "
        f"That shipped {facts.shipped} at macro-F1 {facts.shipped_f1:.3f}; {trade}. "
        f"Temperature scaling (T = {facts.temperature:.1f}) cut calibration error from {facts.ece_before:.2f} "
        f"to {facts.ece_after:.2f}, and a duplicate lookup over already-labelled messages added "
        f"{points(facts.lookup_gain)} of accuracy, more than any model change. Next I would monitor drift, "
        f"because new words keep arriving.")


def traps_table(facts: Facts) -> list[dict]:
    """The guide's five traps, each with the evidence this run produced against it."""
    return [
        {"trap": "memorised maths without intuition",
         "the wrong answer": "reciting the chain rule and Adam's update",
         "what this run measured": "each checklist question below is a prediction checked by a live experiment"},
        {"trap": "one regularization trick for every problem",
         "the wrong answer": "validation loss rises, so add dropout",
         "what this run measured": (f"validation loss was lowest at epoch {facts.loss_epoch}, accuracy peaked at "
                                    f"epoch {facts.accuracy_epoch}; dropout or weight decay moved macro-F1 by at "
                                    f"most {facts.regularizer_change:.3f}, a duplicate lookup added "
                                    f"{points(facts.lookup_gain)} of accuracy")},
        {"trap": "ignoring data quality",
         "the wrong answer": "the validation score is the score",
         "what this run measured": (f"a random split overstated the future by {points(facts.random_overstatement)} "
                                    f"({facts.random_twins:.0%} of its validation had a near-copy in training); "
                                    f"{facts.flagged} labels flagged and fixed")},
        {"trap": "overstating big models",
         "the wrong answer": "a bigger model or an ensemble will fix it",
         "what this run measured": (f"the ensemble added {facts.ensemble_gain:+.3f} macro-F1; retrieval of "
                                    f"labelled near-copies added {points(facts.lookup_gain)} of accuracy")},
        {"trap": "no deployment awareness",
         "the wrong answer": "ship the model with the best offline score",
         "what this run measured": (f"the ensemble cost {facts.ensemble_slowdown:.1f}x the latency; int8 was "
                                    f"{facts.int8_size_ratio:.1f}x smaller and {facts.int8_speedup_batch:.1f}x "
                                    f"faster in batches, yet {1 / facts.int8_speedup_single:.1f}x slower one "
                                    f"message at a time")},
    ]


@dataclass(frozen=True)
class Question:
    """One checklist item as a prediction to make and the live experiment that checks it."""

    item: str
    question: str
    measure: Callable[[], float]
    tolerance: float
    why: str


def chain_rule_factor(seed: int = 0) -> float:
    """How much ``dL/dw1`` grows when ``w2`` doubles, for ``L = sum(w2 relu(w1 x))`` (autograd)."""
    generator = torch.Generator().manual_seed(seed)
    x, w1, w2 = (torch.randn(8, generator=generator) for _ in range(3))
    grads = []
    for scale in (1.0, 2.0):
        first = w1.clone().requires_grad_()
        (scale * w2 * torch.relu(first * x)).sum().backward()
        grads.append(first.grad.norm().item())
    return grads[1] / grads[0]


def adam_first_step_growth(scale: float = 1000.0) -> float:
    """How much Adam's first update grows when the loss is multiplied by ``scale`` (SGD's grows by ``scale``)."""
    steps = []
    for factor in (1.0, scale):
        weights = torch.ones(10, requires_grad=True)
        optimizer = torch.optim.Adam([weights], lr=0.01)
        (factor * (weights * torch.arange(1.0, 11.0)).pow(2).sum()).backward()
        optimizer.step()
        steps.append((1.0 - weights.detach()).norm().item())
    return steps[1] / steps[0]


def vanishing_orders(depth: int = 20, seed: int = 0) -> float:
    """Orders of magnitude between the last and the first hidden layer's gradient, sigmoid MLP at init."""
    torch.manual_seed(seed)
    net = models.mlp(32, 5, width=64, depth=depth, activation="sigmoid")
    x, y = torch.randn(256, 32), torch.randint(0, 5, (256,))
    norms = metrics.activation_gradient_norms(net, x, y)
    return math.log10(norms[-1] / norms[0])


def score_spread(dim: int = 256, seed: int = 0) -> float:
    """Standard deviation of the dot product of two random ``dim``-vectors with unit-variance entries."""
    generator = torch.Generator().manual_seed(seed)
    queries, keys = torch.randn(2, 4096, dim, generator=generator)
    return (queries * keys).sum(dim=-1).std().item()


def initial_loss(x: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0) -> float:
    """Cross-entropy of an untrained MLP on ``(x, labels)``."""
    torch.manual_seed(seed)
    net = models.mlp(x.shape[1], n_classes, width=64, depth=2)
    with torch.no_grad():
        return metrics.nll(net(torch.as_tensor(x, dtype=torch.float32)), torch.as_tensor(labels))


def gap_shrinkage(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                  small: int = 200, large: int = 2000) -> float:
    """How much the train-minus-validation accuracy gap of logistic regression shrinks from ``small`` to
    ``large`` training examples (more data is the first lever against overfitting)."""
    from sklearn.linear_model import LogisticRegression

    gaps = []
    for size in (small, large):
        model = LogisticRegression(C=10.0, max_iter=300, tol=1e-3).fit(x_train[:size], y_train[:size])
        gaps.append(model.score(x_train[:size], y_train[:size]) - model.score(x_val, y_val))
    return gaps[0] - gaps[1]


def transformer_int8_ratio(width: int = 256) -> float:
    """How many times smaller a transformer encoder layer's checkpoint gets with int8 dynamic quantization."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=width, nhead=4, dim_feedforward=4 * width, batch_first=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(layer, {nn.Linear}, dtype=torch.qint8)
    return models.serialized_size(layer) / models.serialized_size(quantized)


def checklist(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
              overstatement_without_bursts: Callable[[], float]) -> list[Question]:
    """The guide's eight checklist items, each as a question answered by a live experiment."""
    return [
        Question("Explain backprop in plain English and with the chain rule.",
                 "For L = sum(w2 * relu(w1 * x)), by what factor does dL/dw1 change when w2 doubles?",
                 chain_rule_factor, 0.05,
                 "The chain rule multiplies local derivatives: dL/dw1 = w2 * relu'(w1 x) * x, linear in w2."),
        Question("Compare SGD, momentum, Adam, and AdamW.",
                 "Multiply the loss by 1000. By what factor does Adam's first update grow? (SGD's grows 1000x.)",
                 adam_first_step_growth, 0.05,
                 "Adam divides by the root of the squared-gradient average, so its steps ignore the loss's scale."),
        Question("Diagnose vanishing/exploding gradients.",
                 "In a 20-layer sigmoid MLP at initialisation, how many orders of magnitude (log10) is the "
                 "first hidden layer's gradient below the last one's?",
                 vanishing_orders, 4.0,
                 "Each sigmoid layer multiplies the backward signal by at most 0.25 times the weights."),
        Question("List five ways to reduce overfitting and when each helps.",
                 "Logistic regression on these messages: by how much (a fraction) does the train-minus-"
                 "validation accuracy gap shrink from 200 to 2000 training messages?",
                 lambda: gap_shrinkage(x_train, y_train, x_val, y_val), 0.1,
                 "More data is the first lever: the same model memorises less of a larger sample."),
        Question("Explain dropout, normalization, residual connections, and attention.",
                 "Two random 256-dimensional vectors with unit-variance entries: what is the standard "
                 "deviation of their dot product (an attention score before dividing by sqrt(d))?",
                 score_spread, 2.0,
                 "A sum of d unit-variance products has variance d: dividing by sqrt(d) keeps softmax unsaturated."),
        Question("Debug flat training loss, train/validation divergence, NaNs, and poor calibration.",
                 f"What cross-entropy should an untrained {n_classes}-queue classifier start at?",
                 lambda: initial_loss(x_val, y_val, n_classes), 0.05,
                 f"Near-uniform outputs give each class 1/{n_classes}: loss ln {n_classes}."),
        Question("Discuss inference optimization for a transformer-style model.",
                 "Int8 dynamic quantization of a transformer encoder layer (width 256): how many times smaller "
                 "is its checkpoint?",
                 transformer_int8_ratio, 0.5,
                 "Only nn.Linear modules are converted; attention's packed input projection stays in float32."),
        Question("Describe one model you trained, the data issue that mattered most, and the metric tradeoff.",
                 "Without incident bursts, by how much (a fraction) would the random split overstate "
                 "future accuracy?",
                 overstatement_without_bursts, 0.05,
                 "Without near-copies to memorise, the random split's validation is no longer a leak."),
    ]


def check_predictions(questions: Sequence[Question], predictions: Mapping[int, float | None]) -> list[dict]:
    """Measure every question live and compare with the learner's predictions (numbered from 1).

    Prints one verdict per question and never raises on a wrong or missing prediction; returns the rows
    (item, question, prediction, measured, seconds) for a table.
    """
    import time

    rows = []
    for number, question in enumerate(questions, start=1):
        started = time.perf_counter()
        measured = float(question.measure())
        seconds = time.perf_counter() - started
        guess = predictions.get(number)
        label = f"{number}. {question.question}"
        if guess is None:
            not_attempted(f"{label} (measured {measured:.3g})")
        elif not isinstance(guess, int | float) or not math.isfinite(guess):
            wrong(f"{label}: the prediction must be a number, got {guess!r}")
        elif abs(guess - measured) <= question.tolerance:
            correct(f"{label} you said {guess:g}, measured {measured:.3g}. {question.why}")
        else:
            wrong(f"{label} you said {guess:g}, measured {measured:.3g}.", question.why)
        rows.append({"item": question.item, "measured": measured, "seconds": seconds,
                     "your prediction": "-" if guess is None else guess})
    return rows


def short_answers(facts: Facts) -> list[str]:
    """The notebook's interview questions answered in one or two sentences each, with this run's numbers."""
    return [
        f"Validation was great, production worse? Leakage and drift: incident copies on both sides of a random "
        f"split let validation recall answers ({facts.random_twins:.0%} of it had a near-copy in training), so it "
        f"overstated the future by {points(facts.random_overstatement)}; a time split missed by "
        f"{points(abs(facts.time_overstatement))}. Rule: split the way the model will be used.",
        f"Bad labels? Out-of-fold probabilities and confident learning flagged {facts.flagged} labels, "
        f"{facts.precision_ratio:.1f}x as precisely as flagging every disagreement; relabelling lifted the "
        f"mislabelled segment's recall from {facts.recall_before:.0%} to {facts.recall_after:.0%}. Rule: audit "
        f"with a model that cannot see the cause of the noise.",
        f"Is the ensemble worth it? {facts.ensemble_gain:+.3f} macro-F1 for {facts.ensemble_slowdown:.1f}x the "
        f"latency. Rule: write the service-level rule first, then ship the cheapest model that passes it.",
        f"Validation loss rising: overfitting? Not here: it was lowest at epoch {facts.loss_epoch} because "
        f"incident copies grew confidently wrong while ordinary messages kept improving until epoch "
        f"{facts.accuracy_epoch}; dropout or weight decay moved macro-F1 by at most "
        f"{facts.regularizer_change:.3f}. Rule: split the loss by segment before choosing a lever.",
        f"Trust the confidence? Only after temperature scaling (T = {facts.temperature:.1f}, ECE "
        f"{facts.ece_before:.2f} to {facts.ece_after:.2f} on the future), and per-segment thresholds need a "
        f"statistical bound and re-checking on recent data. Rule: calibrate on data that looks like the future.",
        f"Cheaper to serve? int8 was {facts.int8_size_ratio:.1f}x smaller and {facts.int8_speedup_batch:.1f}x "
        f"faster in batches of 256 but slower one at a time; a duplicate lookup added "
        f"{points(facts.lookup_gain)} of accuracy. Rule: measure at the batch size you will serve.",
    ]
