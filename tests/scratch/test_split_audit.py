"""Split audits against scikit-learn and brute force."""
import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from helpers.scratch import split_audit


def test_roc_auc_matches_scikit_learn_with_and_without_ties():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=generator)
    scores = torch.randn(200, generator=generator) + labels
    assert split_audit.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    tied = torch.round(scores)
    assert split_audit.roc_auc(tied, labels) == pytest.approx(roc_auc_score(labels, tied))
    assert split_audit.roc_auc(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0, 0, 1])) == 1.0
    assert split_audit.roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == 0.5
    with pytest.raises(ValueError, match=r"^labels must contain both classes"):
        split_audit.roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))


def test_nearest_distances_match_brute_force_in_any_chunk_size():
    generator = torch.Generator().manual_seed(1)
    reference, queries = torch.randn(50, 4, generator=generator), torch.randn(7, 4, generator=generator)
    expected = torch.cdist(queries, reference).min(1).values
    for chunk in (1, 3, 100):
        assert torch.allclose(split_audit.nearest_distances(queries, reference, chunk=chunk), expected)
    own = torch.cdist(reference[:9], reference)
    own[torch.arange(9), torch.arange(9)] = float("inf")
    assert torch.allclose(split_audit.nearest_distances(reference[:9], reference, skip_self=True, chunk=4),
                          own.min(1).values)
    with pytest.raises(ValueError, match=r"^chunk must"):
        split_audit.nearest_distances(queries, reference, chunk=0)


def test_near_duplicate_fraction_counts_copies_and_ignores_fresh_rows():
    generator = torch.Generator().manual_seed(2)
    train = torch.randn(300, 5, generator=generator)
    fresh = torch.randn(100, 5, generator=generator)
    assert split_audit.near_duplicate_fraction(train, fresh) == 0.0
    leaked = torch.cat([fresh[:70], train[:30] + 0.01 * torch.randn(30, 5, generator=generator)])
    assert split_audit.near_duplicate_fraction(train, leaked) == pytest.approx(0.3)
    assert split_audit.near_duplicate_fraction(train, leaked, ratio=1e-6) == 0.0
    with pytest.raises(ValueError, match=r"^ratio must"):
        split_audit.near_duplicate_fraction(train, leaked, ratio=0.0)
    with pytest.raises(ValueError, match=r"^sample must"):
        split_audit.near_duplicate_fraction(train, leaked, sample=0)


def test_quadratic_features_are_standardized_features_and_squares():
    x = torch.tensor([[1.0, 2.0], [3.0, -2.0], [5.0, 0.0]])
    features = split_audit.quadratic_features(x)
    assert features.shape == (3, 4)
    assert torch.allclose(features.mean(0), torch.zeros(4), atol=1e-6)
    assert torch.allclose(features.std(0), torch.ones(4), atol=1e-5)
    assert torch.allclose(features[:, 2], (x[:, 0] ** 2 - 35 / 3) / (x[:, 0] ** 2).std())


def test_fit_logistic_agrees_with_scikit_learn():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(400, 3, generator=generator)
    labels = (x @ torch.tensor([1.5, -2.0, 0.0]) + 0.5 * torch.randn(400, generator=generator) > 0.8).float()
    weights = split_audit.fit_logistic(x, labels, l2=1e-4, iterations=200)
    reference = LogisticRegression(class_weight="balanced", C=1e4, max_iter=2000).fit(x.numpy(), labels.numpy())
    ours = (x @ weights[:-1] + weights[-1] > 0).float()
    theirs = torch.as_tensor(reference.predict(x.numpy())).float()
    assert (ours == theirs).float().mean() > 0.98
    assert torch.allclose(weights[:-1] / weights[:-1].norm(), torch.as_tensor(reference.coef_[0]).float()
                          / float(torch.as_tensor(reference.coef_[0]).norm()), atol=0.05)
    with pytest.raises(ValueError, match=r"^l2 must"):
        split_audit.fit_logistic(x, labels, l2=-1.0)
    with pytest.raises(ValueError, match=r"^iterations must"):
        split_audit.fit_logistic(x, labels, iterations=0)


def test_adversarial_auc_is_near_half_for_one_distribution_and_high_for_a_shift():
    generator = torch.Generator().manual_seed(4)
    train, same = torch.randn(600, 8, generator=generator), torch.randn(200, 8, generator=generator)
    assert abs(split_audit.adversarial_auc(train, same) - 0.5) < 0.08
    noisier = 2.0 * torch.randn(200, 8, generator=generator)          # same mean, larger spread
    assert split_audit.adversarial_auc(train, noisier) > 0.9
    moved = torch.randn(200, 8, generator=generator) + 0.5
    best = 0.5 * (1 + math.erf(0.5 * math.sqrt(8) / 2))   # Phi(d / sqrt 2) for a mean shift d = 0.5 sqrt(8)
    assert split_audit.adversarial_auc(train, moved) == pytest.approx(best, abs=0.05)
    assert split_audit.adversarial_auc(train, moved, seed=1) == pytest.approx(
        split_audit.adversarial_auc(train, moved, seed=1))


def test_near_duplicate_threshold_and_defaults():
    train = torch.arange(0.0, 2000.0, 1.0)[:, None] * torch.tensor([[1.0, 0.0]])   # neighbours 1 apart
    close, far = train[:10] + torch.tensor([0.2, 0.0]), train[:10] + torch.tensor([0.0, 0.3])
    assert split_audit.near_duplicate_fraction(train, close) == 1.0       # 0.2 < 0.25 x 1
    assert split_audit.near_duplicate_fraction(train, far) == 0.0         # 0.3 > 0.25 x 1
    assert split_audit.near_duplicate_fraction(train, far, ratio=0.31) == 1.0
    spread = torch.cat([torch.arange(1000.0)[:, None], 1000 + 10 * torch.arange(3000.0)[:, None]])
    queries = spread[1000:1010] + 2.0                                  # 2 from a row whose neighbours are 10 apart
    assert split_audit.near_duplicate_fraction(spread, queries) == 0.0  # typical spacing of the first 1000 rows is 1
    assert split_audit.near_duplicate_fraction(spread, queries, sample=4000) == 1.0  # of all rows: 10
    reference, queries = torch.randn(3000, 2), torch.randn(1500, 2)
    assert torch.equal(split_audit.nearest_distances(queries, reference),
                       split_audit.nearest_distances(queries, reference, chunk=1024))


def test_fit_logistic_defaults_regularise_lightly():
    x = torch.tensor([[-1.0], [1.0], [-2.0], [2.0]])
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0])
    weights = split_audit.fit_logistic(x, labels)
    assert torch.allclose(weights, split_audit.fit_logistic(x, labels, l2=1e-3, iterations=100))
    assert weights[0] > 3 and abs(weights[1]) < 1e-3
    assert split_audit.fit_logistic(x, labels, l2=10.0)[0] < weights[0]
