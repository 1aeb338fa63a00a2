"""Is a validation split honest? Two complementary audits, written from scratch.

* **Near-duplicates** (leakage): validation examples that sit much closer to some training example than
  training examples sit to one another are copies, and score as if the model had seen them.
* **Adversarial validation** (shift): train a classifier to tell training inputs from validation inputs.
  If it can (ROC AUC well above 0.5), the two were not drawn from one distribution.

A leak of copies leaves the distribution unchanged (adversarial validation is blind to it), and a shift
creates no copies (the duplicate check is blind to it): run both.
"""
from __future__ import annotations

import torch
from torch.nn import functional

from helpers.validation import check_float, check_int


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, skip_self: bool = False,
                      chunk: int = 1024) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest reference row, computed in chunks.

    With ``skip_self`` the queries are the first rows of ``reference`` and row i ignores itself.
    """
    check_int("chunk", chunk, 1, 1_000_000)
    queries, reference = queries.flatten(1).float(), reference.flatten(1).float()  # (Q, D), (N, D)
    nearest = []
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start:start + chunk], reference)           # (chunk, N)
        if skip_self:
            rows = torch.arange(len(distances), device=distances.device)
            distances[rows, rows + start] = float("inf")
        nearest.append(distances.min(1).values)
    return torch.cat(nearest)


def near_duplicate_fraction(x_train: torch.Tensor, x_val: torch.Tensor, ratio: float = 0.25,
                            sample: int = 1000) -> float:
    """Share of validation rows whose nearest training row is closer than ``ratio`` times the median
    distance from a training row to its nearest *other* training row (measured on ``sample`` rows)."""
    check_float("ratio", ratio, 0.0, 1.0, lo_open=True)
    check_int("sample", sample, 1, 1_000_000)
    typical = nearest_distances(x_train[:sample], x_train, skip_self=True).median()
    return (nearest_distances(x_val, x_train) < ratio * typical).float().mean().item()


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties: 1/2).

    Computed from ranks (the Mann-Whitney U statistic), with tied scores given their average rank.
    """
    scores, labels = scores.flatten().double(), labels.flatten().bool()
    positives, negatives = labels.sum().item(), (~labels).sum().item()
    if positives == 0 or negatives == 0:
        raise ValueError("labels must contain both classes (at least one 0 and one 1)")
    unique, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    last_rank = torch.cumsum(counts, 0).double()                  # rank of the last copy of each score
    average_rank = (last_rank - (counts - 1) / 2.0)[inverse]      # 1-based ranks, ties averaged
    u = average_rank[labels].sum().item() - positives * (positives + 1) / 2
    return u / (positives * negatives)


def quadratic_features(x: torch.Tensor) -> torch.Tensor:
    """Each feature and its square, standardized: a linear model on them sees shifts in mean *and* in spread."""
    x = x.flatten(1).float()
    features = torch.cat([x, x * x], dim=1)                       # (N, 2D)
    return (features - features.mean(0)) / features.std(0).clamp_min(1e-6)


def fit_logistic(x: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, iterations: int = 100) -> torch.Tensor:
    """Weights (bias last) of an L2-regularised logistic regression, classes weighted to count equally."""
    check_float("l2", l2, 0.0, 100.0)
    check_int("iterations", iterations, 1, 10_000)
    design = torch.cat([x, torch.ones(len(x), 1, device=x.device)], dim=1)     # (N, D + 1)
    weights = torch.zeros(design.shape[1], device=x.device, requires_grad=True)
    balance = torch.where(labels > 0.5, 0.5 / labels.mean(), 0.5 / (1 - labels.mean()))
    optimizer = torch.optim.LBFGS([weights], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        per_row = functional.binary_cross_entropy_with_logits(design @ weights, labels, reduction="none")
        loss = (balance * per_row).mean() + l2 * weights[:-1].pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach()


def adversarial_auc(x_train: torch.Tensor, x_val: torch.Tensor, seed: int = 0) -> float:
    """Cross-fitted ROC AUC of a classifier that tells validation rows (1) from training rows (0).

    The rows are split in two halves; a logistic regression on :func:`quadratic_features` fitted on one
    half scores the other, so every row is scored by a model that never saw it. 0.5 means indistinguishable.
    """
    check_int("seed", seed, 0, 2**32 - 1)
    features = quadratic_features(torch.cat([x_train, x_val]))
    labels = torch.cat([torch.zeros(len(x_train)), torch.ones(len(x_val))]).to(features.device)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).to(features.device)
    halves = order.chunk(2)
    scores = torch.empty_like(labels)
    for scored, fitted in ((halves[0], halves[1]), (halves[1], halves[0])):
        weights = fit_logistic(features[fitted], labels[fitted])
        scores[scored] = features[scored] @ weights[:-1] + weights[-1]
    return roc_auc(scores, labels)
