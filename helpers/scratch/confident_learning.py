"""Confident learning (Northcutt, Jiang & Chuang 2021): find the labels a data set most likely got wrong.

Input: for every example, its given label and out-of-sample predicted probabilities (from a model that
did not train on it, e.g. cross-validation). Three steps:

1. **Per-class thresholds.** ``t_j`` is the model's average confidence in class ``j`` over the examples
   *labelled* ``j``: what "confident in j" means for this model, which may be under- or over-confident.
2. **Confident joint.** Count example ``x`` labelled ``i`` in cell ``(i, j)`` when the model's probability
   for ``j`` reaches ``t_j`` (the most probable such ``j`` if several do). Off-diagonal cells count
   examples whose label disagrees with a confident prediction. Rescaled so each row holds as many
   examples as carry that label, then normalised, it estimates the joint distribution of
   (given label, true label).
3. **Prune by noise rate.** For each off-diagonal cell ``(i, j)``, flag the ``n * Q[i, j]`` examples
   labelled ``i`` with the largest margin ``p_j - p_i``: the estimated number of errors, the most
   suspicious first.

The baselines it is compared with: :func:`disagreements` flags every example whose arg-max prediction
differs from its label, which also flags every example the model simply gets wrong; and
:func:`least_self_confident` flags a fixed number of examples, those whose given label gets the lowest
predicted probability (the fair comparison at an equal budget of flags).
"""
from __future__ import annotations

import numpy as np

from helpers.validation import check_int


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must have shape (n, classes) with n >= 1, got {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be integers in [0, {probs.shape[1] - 1}]")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs must be finite, non-negative, and each row must sum to 1")
    return probs, labels


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``t_j``: the mean predicted probability of class ``j`` over the examples labelled ``j``.

    A class that labels no example gets threshold 1.0 (no example is ever confidently counted in it
    by this rule alone).
    """
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=n_classes)                        # (classes,)
    sums = np.bincount(labels, weights=probs[np.arange(len(labels)), labels], minlength=n_classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``C[i, j]``: examples labelled ``i`` whose most probable class among those reaching their threshold is ``j``.

    Examples for which no class reaches its threshold are not counted.
    """
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    confident = probs >= per_class_thresholds(probs, labels)                 # (n, classes)
    counted = confident.any(axis=1)
    guess = np.where(confident, probs, -np.inf).argmax(axis=1)               # (n,)
    joint = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    return joint


def estimate_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``Q[i, j]``, the estimated share of all examples that carry label ``i`` and truly belong to ``j``.

    Each row of the confident joint is rescaled to the number of examples labelled ``i`` (the counted
    ones stand in for all of them), then the matrix is normalised to sum to 1.
    """
    probs, labels = _check(probs, labels)
    joint = confident_joint(probs, labels)                                  # (classes, classes)
    label_counts = np.bincount(labels, minlength=probs.shape[1])
    rescaled = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1) * label_counts[:, None]
    return rescaled / rescaled.sum()


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the examples confident learning flags as mislabelled (prune by noise rate)."""
    probs, labels = _check(probs, labels)
    n, n_classes = probs.shape
    joint = estimate_joint(probs, labels)
    flagged = np.zeros(n, dtype=bool)
    for given in range(n_classes):
        members = np.flatnonzero(labels == given)
        for true in range(n_classes):
            count = int(round(n * joint[given, true]))
            if true == given or count == 0:
                continue
            margin = probs[members, true] - probs[members, given]            # (members,)
            flagged[members[np.argsort(-margin, kind="stable")[:count]]] = True
    return flagged


def disagreements(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The baseline: flag every example whose most probable class is not its label."""
    probs, labels = _check(probs, labels)
    return probs.argmax(axis=1) != labels


def least_self_confident(probs: np.ndarray, labels: np.ndarray, budget: int) -> np.ndarray:
    """The equal-budget baseline: flag the ``budget`` examples whose given label has the lowest probability."""
    probs, labels = _check(probs, labels)
    check_int("budget", budget, 0, len(labels))
    self_confidence = probs[np.arange(len(labels)), labels]                  # (n,)
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[np.argsort(self_confidence, kind="stable")[:budget]] = True
    return flagged


def out_of_fold(fit_predict, x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-sample probabilities: each fold predicted by ``fit_predict(x_train, y_train, x_held_out)``
    trained on the other folds, so no example is scored by a model that saw its label."""
    check_int("folds", folds, 2, 50)
    labels = np.asarray(labels)
    if len(x) != len(labels) or len(labels) < folds:
        raise ValueError(f"x and labels must have the same length, at least folds={folds}")
    fold_of = np.random.default_rng(seed).permutation(len(labels)) % folds
    probs = None
    for fold in range(folds):
        held_out = fold_of == fold
        predicted = np.asarray(fit_predict(x[~held_out], labels[~held_out], x[held_out]))
        if probs is None:
            probs = np.zeros((len(labels), predicted.shape[1]))
        probs[held_out] = predicted
    return probs
