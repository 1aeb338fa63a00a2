"""Notebook 08, part 3: can the shipped model's confidence be trusted, and how would we notice it going stale?

Everything here takes plain arrays (logits, labels, masks), so it works for any model: temperatures
fitted per population (incident copies against ordinary messages), reliability on the future, confidence
thresholds per segment chosen with a point estimate or a Wilson bound (with a same-period control that
separates selection noise from drift), and a weekly drift monitor.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from helpers.scratch import calibration
from helpers.validation import check_choice, check_float, check_int


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits divided by ``temperature`` (rows sum to 1)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` under softmax(logits / T) (Guo et al. 2017)."""
    return calibration.fit_temperature(torch.as_tensor(np.asarray(logits, dtype=np.float64)),
                                       torch.as_tensor(np.asarray(labels, dtype=np.int64)))


def ece(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-label ECE with 15 equal-width bins (:func:`helpers.scratch.calibration.expected_calibration_error`)."""
    return calibration.expected_calibration_error(torch.as_tensor(probs), torch.as_tensor(np.asarray(labels)))


POPULATIONS = ("all messages", "ordinary messages", "incident copies")


def _masks(copies: np.ndarray) -> dict[str, np.ndarray]:
    copies = np.asarray(copies, dtype=bool)
    return {"all messages": np.ones_like(copies), "ordinary messages": ~copies, "incident copies": copies}


def temperatures_by_population(logits: np.ndarray, labels: np.ndarray, copies: np.ndarray) -> dict[str, float]:
    """The temperature fitted on all messages, on ordinary messages only and on incident copies only."""
    return {name: fit_temperature(logits[mask], labels[mask]) for name, mask in _masks(copies).items()}


def population_table(logits: np.ndarray, labels: np.ndarray, copies: np.ndarray,
                     temperatures: Mapping[str, float]) -> list[dict]:
    """For each population of ``(logits, labels)``: size, accuracy, cross-entropy, and the ECE each named
    temperature gives it."""
    rows = []
    for name, mask in _masks(copies).items():
        z, y = logits[mask], labels[mask]
        row = {"population": name, "messages": int(mask.sum()), "accuracy": float(np.mean(z.argmax(1) == y)),
               "cross-entropy": float(-np.mean(np.log(softmax(z)[np.arange(len(y)), y] + 1e-300)))}
        row.update({f"ECE at T={t:.2f} ({label})": ece(softmax(z, t), y) for label, t in temperatures.items()})
        rows.append(row)
    return rows


def reliability_figure(logits: np.ndarray, labels: np.ndarray, copies: np.ndarray,
                       temperatures: Mapping[str, float], bins: int = 10):
    """Reliability on the future, one panel per population (ordinary messages, incident copies), one curve
    per named temperature; bins with fewer than 10 messages are left out (they are noise)."""
    from helpers import plotting

    check_int("bins", bins, 2, 100)
    fig, axes = plotting.figure("Reliability on the future (days 300-360), by population",
                                "confidence (top probability)", "accuracy in the bin (fraction)", ncols=2,
                                figsize=(10, 4.2))
    edges = np.linspace(0, 1, bins + 1)
    for ax, name in zip(axes, POPULATIONS[1:]):
        mask = _masks(copies)[name]
        ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="perfect calibration")
        for (label, t), color in zip(temperatures.items(), plotting.PALETTE):
            probs = softmax(logits[mask], t)
            confidence, right = probs.max(axis=1), probs.argmax(axis=1) == labels[mask]
            which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
            filled = [b for b in range(bins) if np.sum(which == b) >= 10]
            ax.plot([confidence[which == b].mean() for b in filled], [right[which == b].mean() for b in filled],
                    "o-", color=color, label=f"T = {t:.2f}, {label}")
        ax.set_title(f"{name} ({int(mask.sum())} messages)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=4, fontsize=8)
    return fig


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
    """The lowest confidence at which messages are routed automatically, chosen so that the routed messages'
    accuracy (``rule``: its point estimate or its Wilson lower bound) reaches ``target``.
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


def segment_routing(chosen_on: Mapping[str, np.ndarray], scored_on: Mapping[str, np.ndarray],
                    segments: Sequence[str], target: float, rule: str) -> list[dict]:
    """Per-segment thresholds chosen on ``chosen_on`` and what they do on ``scored_on``.

    Each mapping holds ``confidence``, ``correct`` (bool) and ``segment`` (index into ``segments``).
    """
    rows = []
    for k, name in enumerate(segments):
        mine = chosen_on["segment"] == k
        threshold = routing_threshold(chosen_on["confidence"][mine], chosen_on["correct"][mine], target, rule)
        later = scored_on["segment"] == k
        routed = later & (scored_on["confidence"] >= threshold)
        rows.append({"segment": name, "rule": rule, "threshold": threshold, "chosen on": int(mine.sum()),
                     "coverage": float(routed.sum() / max(later.sum(), 1)),
                     "routed accuracy": float(scored_on["correct"][routed].mean()) if routed.any() else math.nan,
                     "misrouted": int((routed & ~scored_on["correct"]).sum())})
    return rows


def routing_check(validation: Mapping[str, np.ndarray], future: Mapping[str, np.ndarray], segments: Sequence[str],
                  target: float, seed: int = 0) -> list[dict]:
    """Thresholds per segment by each rule, scored two ways: on the future (chosen on all of validation), and,
    as a same-period control, on a random half of validation (chosen on the other half). A miss in the
    same period comes from choosing on noisy estimates; what the future adds on top comes from drift."""
    check_int("seed", seed, 0, 2**32 - 1)
    half = np.random.default_rng(seed).permutation(len(validation["correct"])) % 2 == 0
    first, second = ({key: value[part] for key, value in validation.items()} for part in (half, ~half))
    rows = []
    for rule in ROUTING_RULES:
        for scored, chosen, scored_on in (("future", validation, future), ("same period", first, second)):
            rows += [{"scored on": scored, **row} for row in segment_routing(chosen, scored_on, segments, target, rule)]
    return rows


def worst_shortfall(rows: Sequence[Mapping], target: float, rule: str, scored: str) -> float:
    """How far the worst segment's routed accuracy falls below ``target`` (negative: all segments reach it)."""
    misses = [target - row["routed accuracy"] for row in rows
              if row["rule"] == rule and row["scored on"] == scored and row["coverage"] > 0]
    return max(misses) if misses else math.nan


def routed_accuracy(scored_on: Mapping[str, np.ndarray], rows: Sequence[Mapping], rule: str, scored: str,
                    mask: np.ndarray) -> float:
    """Accuracy of the messages in ``mask`` that the thresholds of ``rows`` (one rule, one scoring) route."""
    chosen = [row["threshold"] for row in rows if row["rule"] == rule and row["scored on"] == scored]
    limit = np.array(chosen)[scored_on["segment"]]                            # (n,): its segment's threshold
    routed = (scored_on["confidence"] >= limit) & np.asarray(mask, dtype=bool)
    return float(scored_on["correct"][routed].mean()) if routed.any() else math.nan


def nll_curves_figure(logits: np.ndarray, labels: np.ndarray, copies: np.ndarray,
                      temperatures: Mapping[str, float]):
    """Validation NLL against the temperature for each population, as the excess over its own minimum, with
    the temperature fitted on each population marked: where one temperature cannot serve both."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    from helpers import plotting

    fig, ax = plotting.figure("One temperature cannot fit both populations", "temperature T (log scale)",
                              "NLL above its minimum (nats)")
    grid = np.exp(np.linspace(np.log(0.3), np.log(60.0), 80))
    for (name, mask), color in zip(_masks(copies).items(), plotting.PALETTE):
        z, y = logits[mask], labels[mask]
        nll = np.array([-np.mean(np.log(softmax(z, t)[np.arange(len(y)), y] + 1e-300)) for t in grid])
        ax.plot(grid, nll - nll.min(), color=color, label=f"{name} (fitted T = {temperatures[name]:.2f})")
        ax.axvline(temperatures[name], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.3, 0.5, 1, 2, 5, 10, 20, 50]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylim(0, 1.0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=8)
    return fig


def rare_word_share(fit_words: np.ndarray, words: np.ndarray, min_share: float = 0.005) -> np.ndarray:
    """For each row of ``words`` (0/1 presence): the share of its words that occur in fewer than ``min_share``
    of the rows of ``fit_words``, the training messages. Words the model has barely seen: a drift signal."""
    check_float("min_share", min_share, 0.0, 1.0, lo_open=True)
    fit_words, words = np.asarray(fit_words, dtype=float), np.asarray(words, dtype=float)
    rare = fit_words.mean(axis=0) < min_share                                # (words,)
    return (words @ rare) / np.maximum(words.sum(axis=1), 1)


def weekly_monitor(day: np.ndarray, unseen: np.ndarray, correct: np.ndarray, start: float, stop: float,
                   week: float = 7.0) -> dict[str, np.ndarray]:
    """What a drift monitor plots each week between ``start`` and ``stop``: the mean of ``unseen`` (the share
    of each message's words the model has barely seen) and of ``correct`` (against the labels recorded for
    the messages). Days after the last whole week join it; days outside [start, stop) are ignored."""
    check_float("week", week, 0.5, 100.0)
    if stop <= start:
        raise ValueError(f"stop must be after start, got start={start}, stop={stop}")
    weeks = max(1, int((stop - start) // week))
    inside = (day >= start) & (day < stop)
    which = np.where(inside, np.minimum((day - start) // week, weeks - 1), -1).astype(int)
    keep = [k for k in range(weeks) if np.any(which == k)]
    return {"week start": start + week * np.array(keep, dtype=float),
            "unseen word share": np.array([unseen[which == k].mean() for k in keep]),
            "accuracy": np.array([correct[which == k].mean() for k in keep])}


def monitor_figure(weekly: Mapping[str, np.ndarray], deployed_from: float,
                   ordinary_accuracy: np.ndarray | None = None):
    """Two panels over the weeks: the share of words the model has barely seen, and accuracy on recorded
    labels (also on ordinary messages alone, when given)."""
    from helpers import plotting

    fig, (left, right) = plotting.figure("What a drift monitor would have shown each week", "day",
                                         "share of words rare in training", ncols=2, figsize=(10, 3.8))
    left.plot(weekly["week start"], weekly["unseen word share"], "o-", color=plotting.PALETTE[0])
    right.plot(weekly["week start"], weekly["accuracy"], "o-", color=plotting.PALETTE[1], label="all messages")
    if ordinary_accuracy is not None:
        right.plot(weekly["week start"], ordinary_accuracy, "s--", color=plotting.PALETTE[2],
                   label="ordinary messages (no incident copies)")
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=8)
    right.set_ylabel("accuracy on recorded labels (fraction)")
    left.set_ylim(0, max(0.1, 1.2 * float(weekly["unseen word share"].max())))
    shown = np.concatenate([weekly["accuracy"], [] if ordinary_accuracy is None else ordinary_accuracy])
    right.set_ylim(max(0.0, min(float(shown.min()) - 0.05, 0.6)), 1.0)
    for ax in (left, right):
        ax.axvline(deployed_from, color="black", ls=":", lw=1)
        ax.annotate("future (shipped)", (deployed_from, ax.get_ylim()[1]), xytext=(4, -12),
                    textcoords="offset points", fontsize=8)
    return fig
