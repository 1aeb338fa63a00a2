"""Confident learning against cases computed by hand (probabilities in binary fractions, so ties are exact)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.scratch import confident_learning

# Case A: example 2 is labelled 0 but confidently class 1; example 4 is misclassified without confidence.
PROBS_A = np.array([[0.75, 0.125, 0.125],
                    [0.5, 0.25, 0.25],        # p0 ties t0 = 0.5: counted as confident
                    [0.25, 0.625, 0.125],
                    [0.125, 0.75, 0.125],
                    [0.375, 0.3125, 0.3125],  # argmax 0 against label 1, but no class reaches its threshold
                    [0.125, 0.125, 0.75]])    # p2 ties t2 = 0.75
LABELS_A = np.array([0, 0, 0, 1, 1, 2])

# Case B: example 3's most probable class (2) misses its threshold, class 1 reaches its own: it counts as 1.
PROBS_B = np.array([[0.75, 0.125, 0.125],
                    [0.5, 0.25, 0.25],        # classes 0 and 1 both reach their thresholds: 0 is more probable
                    [0.0625, 0.0625, 0.875],
                    [0.25, 0.3125, 0.4375]])
LABELS_B = np.array([0, 1, 2, 0])


def test_thresholds_are_the_mean_self_confidence_of_each_label():
    np.testing.assert_allclose(confident_learning.per_class_thresholds(PROBS_A, LABELS_A), [0.5, 0.53125, 0.75])
    np.testing.assert_allclose(confident_learning.per_class_thresholds(PROBS_B, LABELS_B), [0.5, 0.25, 0.875])


def test_a_class_that_labels_nothing_gets_threshold_one():
    probs = np.array([[0.75, 0.25, 0.0], [0.25, 0.5, 0.25]])
    np.testing.assert_allclose(confident_learning.per_class_thresholds(probs, np.array([0, 1])), [0.75, 0.5, 1.0])


def test_confident_joint_counts_ties_and_skips_unconfident_examples():
    np.testing.assert_array_equal(confident_learning.confident_joint(PROBS_A, LABELS_A),
                                  [[2, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_confident_joint_takes_the_most_probable_class_among_those_above_threshold():
    np.testing.assert_array_equal(confident_learning.confident_joint(PROBS_B, LABELS_B),
                                  [[1, 1, 0], [1, 0, 0], [0, 0, 1]])


def test_estimated_joint_rescales_rows_to_label_counts_and_sums_to_one():
    np.testing.assert_allclose(confident_learning.estimate_joint(PROBS_A, LABELS_A),
                               np.array([[2, 1, 0], [0, 2, 0], [0, 0, 1]]) / 6)
    np.testing.assert_allclose(confident_learning.estimate_joint(PROBS_B, LABELS_B),
                               np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]]) / 4)


def test_estimated_joint_of_a_class_without_examples_is_zero_not_nan():
    probs = np.array([[0.75, 0.25, 0.0], [0.75, 0.25, 0.0], [0.25, 0.75, 0.0]])
    joint = confident_learning.estimate_joint(probs, np.array([0, 0, 1]))
    np.testing.assert_allclose(joint, np.array([[2, 0, 0], [0, 1, 0], [0, 0, 0]]) / 3)


def test_find_label_issues_flags_the_confidently_wrong_label_only():
    np.testing.assert_array_equal(confident_learning.find_label_issues(PROBS_A, LABELS_A),
                                  [False, False, True, False, False, False])


def test_find_label_issues_flags_each_off_diagonal_cell():
    np.testing.assert_array_equal(confident_learning.find_label_issues(PROBS_B, LABELS_B), [False, True, False, True])


def test_find_label_issues_prunes_by_the_largest_margin_first():
    # Labelled 0, four examples; the joint puts one of four in cell (0, 1): flag the largest p1 - p0.
    probs = np.array([[0.75, 0.25], [0.75, 0.25], [0.5, 0.5], [0.375, 0.625], [0.25, 0.75], [0.125, 0.875]])
    labels = np.array([0, 0, 0, 0, 1, 1])
    # t0 = (0.75 + 0.75 + 0.5 + 0.375) / 4 = 0.59375, t1 = 0.8125: example 3 reaches neither threshold.
    np.testing.assert_array_equal(confident_learning.confident_joint(probs, labels), [[2, 0], [0, 1]])
    assert not confident_learning.find_label_issues(probs, labels).any()
    probs[3] = [0.125, 0.875]                   # now confidently 1: t0 = 0.53125, t1 = 0.8125
    np.testing.assert_array_equal(confident_learning.confident_joint(probs, labels), [[2, 1], [0, 1]])
    # Row 0 rescaled to its 4 labels: 8/3 and 4/3; row 1 to its 2; total 6, so n * Q[0, 1] = 4/3, rounded to 1.
    np.testing.assert_array_equal(confident_learning.find_label_issues(probs, labels),
                                  [False, False, False, True, False, False])


def test_disagreements_flag_every_arg_max_that_differs_from_the_label():
    np.testing.assert_array_equal(confident_learning.disagreements(PROBS_A, LABELS_A),
                                  [False, False, True, False, True, False])


def test_least_self_confident_flags_the_lowest_probabilities_of_the_given_labels():
    # Self-confidence of case A: 0.75, 0.5, 0.25, 0.75, 0.3125, 0.75.
    np.testing.assert_array_equal(confident_learning.least_self_confident(PROBS_A, LABELS_A, 2),
                                  [False, False, True, False, True, False])
    np.testing.assert_array_equal(confident_learning.least_self_confident(PROBS_A, LABELS_A, 3),
                                  [False, True, True, False, True, False])
    assert not confident_learning.least_self_confident(PROBS_A, LABELS_A, 0).any()
    assert confident_learning.least_self_confident(PROBS_A, LABELS_A, 6).all()
    # Ties (0.75 three times) are broken by position, so the budget is met exactly.
    assert confident_learning.least_self_confident(PROBS_A, LABELS_A, 4).tolist() == [
        True, True, True, False, True, False]


def test_least_self_confident_refuses_a_budget_beyond_the_data():
    with pytest.raises(ValueError, match="budget"):
        confident_learning.least_self_confident(PROBS_A, LABELS_A, 7)
    with pytest.raises(ValueError, match="budget"):
        confident_learning.least_self_confident(PROBS_A, LABELS_A, -1)


def test_out_of_fold_never_scores_an_example_with_a_model_that_saw_it():
    x = np.arange(20, dtype=float)[:, None]
    labels = np.arange(20) % 2
    calls = []

    def fit_predict(x_train, y_train, x_held_out):
        calls.append((set(x_train[:, 0]), set(x_held_out[:, 0])))
        assert len(x_train) == len(y_train)
        share = x_held_out[:, 0] / 20                                          # encodes which row is predicted
        return np.stack([share, 1 - share], axis=1)

    probs = confident_learning.out_of_fold(fit_predict, x, labels, folds=4, seed=3)
    assert len(calls) == 4
    assert all(not (seen & held) for seen, held in calls)
    assert sorted(len(held) for _, held in calls) == [5, 5, 5, 5]
    assert set().union(*(held for _, held in calls)) == set(range(20))
    np.testing.assert_allclose(probs[:, 0] * 20, np.arange(20))


def test_out_of_fold_assignment_depends_on_the_seed():
    x = np.arange(30, dtype=float)[:, None]
    def held_out_sets(seed):
        held = []

        def record(x_fit, y_fit, x_held):
            held.append(frozenset(x_held[:, 0]))
            return np.full((len(x_held), 2), 0.5)

        confident_learning.out_of_fold(record, x, np.zeros(30, dtype=int), folds=3, seed=seed)
        return set(held)

    assert held_out_sets(0) != held_out_sets(1)
    assert held_out_sets(0) == held_out_sets(0)


@pytest.mark.parametrize("probs, labels, message", [
    (np.array([0.5, 0.5]), np.array([0]), "probs must have shape"),
    (np.zeros((0, 2)), np.zeros(0, dtype=int), "probs must have shape"),
    (np.array([[0.5, 0.5]]), np.array([0, 1]), "labels must have shape"),
    (np.array([[0.5, 0.5]]), np.array([2]), "labels must be integers"),
    (np.array([[0.5, 0.5]]), np.array([-1]), "labels must be integers"),
    (np.array([[0.5, 0.5]]), np.array([0.0]), "labels must be integers"),
    (np.array([[0.7, 0.7]]), np.array([0]), "each row must sum to 1"),
    (np.array([[1.5, -0.5]]), np.array([0]), "non-negative"),
    (np.array([[np.nan, 1.0]]), np.array([0]), "finite"),
])
def test_bad_input_is_refused_with_a_clear_message(probs, labels, message):
    for fn in (confident_learning.per_class_thresholds, confident_learning.confident_joint,
               confident_learning.estimate_joint, confident_learning.find_label_issues,
               confident_learning.disagreements):
        with pytest.raises(ValueError, match=message):
            fn(probs, labels)


def test_out_of_fold_refuses_bad_folds_and_lengths():
    with pytest.raises(ValueError, match="folds"):
        confident_learning.out_of_fold(lambda a, b, c: None, np.zeros((10, 1)), np.zeros(10, dtype=int), folds=1)
    with pytest.raises(ValueError, match="same length"):
        confident_learning.out_of_fold(lambda a, b, c: None, np.zeros((10, 1)), np.zeros(9, dtype=int), folds=2)
    with pytest.raises(ValueError, match="same length"):
        confident_learning.out_of_fold(lambda a, b, c: None, np.zeros((3, 1)), np.zeros(3, dtype=int), folds=4)


def test_results_have_the_documented_types():
    assert np.issubdtype(confident_learning.confident_joint(PROBS_A, LABELS_A).dtype, np.integer)
    assert confident_learning.find_label_issues(PROBS_A, LABELS_A).dtype == bool
    assert confident_learning.disagreements(PROBS_A, LABELS_A).dtype == bool


def test_rows_that_sum_to_one_within_rounding_are_accepted():
    probs = np.array([[0.50003, 0.50002], [0.25, 0.75]])                  # first row sums to 1.00005
    np.testing.assert_allclose(confident_learning.per_class_thresholds(probs, np.array([0, 1])), [0.50003, 0.75])


def test_error_messages_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"^labels must have shape \(1,\), got \(2,\)$"):
        confident_learning.disagreements(np.array([[0.5, 0.25, 0.25]]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"^labels must be integers in \[0, 2\]$"):
        confident_learning.disagreements(np.array([[0.5, 0.25, 0.25]]), np.array([3]))
    with pytest.raises(ValueError, match=r"^probs must be finite"):
        confident_learning.disagreements(np.array([[0.7, 0.7]]), np.array([0]))
    with pytest.raises(ValueError, match=r"^folds must be an integer in \[2, 50\]"):
        confident_learning.out_of_fold(lambda a, b, c: None, np.zeros((60, 1)), np.zeros(60, dtype=int), folds=51)


def test_out_of_fold_allows_one_example_per_fold():
    x = np.arange(4, dtype=float)[:, None]
    probs = confident_learning.out_of_fold(lambda a, b, c: np.stack([c[:, 0] / 4, 1 - c[:, 0] / 4], axis=1),
                                          x, np.array([0, 1, 0, 1]), folds=4)
    np.testing.assert_allclose(probs[:, 0] * 4, np.arange(4))
