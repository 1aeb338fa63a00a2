"""Word vectors from co-occurrence counts, checked by hand and against an eigendecomposition."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.scratch import word_vectors

# Three documents over three words: (0, 1), (0, 2) and (0, 1, 2).
PRESENCE = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=float)


def test_cooccurrence_counts_shared_documents_by_hand():
    expected = np.array([[0, 2, 2], [2, 0, 1], [2, 1, 0]], dtype=float)
    np.testing.assert_array_equal(word_vectors.cooccurrence(PRESENCE), expected)


def test_ppmi_by_hand():
    counts = word_vectors.cooccurrence(PRESENCE)                    # total 10, row sums (4, 3, 3)
    expected = np.array([[0, math.log(20 / 12), math.log(20 / 12)],
                         [math.log(20 / 12), 0, math.log(10 / 9)],
                         [math.log(20 / 12), math.log(10 / 9), 0]])
    np.testing.assert_allclose(word_vectors.ppmi(counts), expected, rtol=1e-12)


def test_ppmi_clips_negative_associations_and_empty_cells_to_zero():
    counts = np.array([[0, 9, 1, 0], [9, 0, 1, 0], [1, 1, 0, 2], [0, 0, 2, 0]], dtype=float)
    total, row = counts.sum(), counts.sum(axis=1)
    raw = math.log(1 * total / (row[0] * row[2]))
    assert raw < 0                                                   # words 0 and 2 meet less than by chance
    result = word_vectors.ppmi(counts)
    assert result[0, 2] == 0.0 and result[0, 3] == 0.0 and result[3, 3] == 0.0
    assert result[0, 1] == pytest.approx(math.log(9 * total / (row[0] * row[1])))
    assert result[2, 3] == pytest.approx(math.log(2 * total / (row[2] * row[3])))
    np.testing.assert_allclose(result, result.T)


def test_full_rank_vectors_reproduce_the_absolute_eigendecomposition():
    rng = np.random.default_rng(0)
    presence = (rng.uniform(size=(40, 6)) < 0.4).astype(float)
    association = word_vectors.ppmi(word_vectors.cooccurrence(presence))
    values, vectors = np.linalg.eigh(association)
    reference = vectors @ np.diag(np.abs(values)) @ vectors.T        # U S U^T for a symmetric matrix
    found = word_vectors.word_vectors(presence, dim=6)
    np.testing.assert_allclose(found @ found.T, reference, atol=1e-10)


def test_truncation_keeps_the_largest_singular_directions():
    rng = np.random.default_rng(1)
    presence = (rng.uniform(size=(60, 8)) < 0.4).astype(float)
    association = word_vectors.ppmi(word_vectors.cooccurrence(presence))
    singular = np.linalg.svd(association, compute_uv=False)
    found = word_vectors.word_vectors(presence, dim=2)
    assert found.shape == (8, 2)
    np.testing.assert_allclose(np.sort(np.linalg.norm(found, axis=0) ** 2)[::-1], singular[:2], rtol=1e-10)


def test_synonyms_that_never_meet_get_the_same_direction():
    # Words 0 and 1 never share a document but always come with words 2 and 3; word 4 lives elsewhere.
    presence = np.array([[1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=float)
    vectors = word_vectors.word_vectors(presence, dim=3)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] == pytest.approx(1.0, abs=1e-9)
    assert abs(unit[0] @ unit[4]) < 1e-9


def test_document_vectors_sum_the_words_and_have_unit_length():
    vectors = np.array([[3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    found = word_vectors.document_vectors(np.array([[1, 1, 0], [0, 0, 0], [0, 0, 1]]), vectors)
    np.testing.assert_allclose(found, [[0.6, 0.8], [0.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]])


@pytest.mark.parametrize("presence, message", [
    (np.zeros((0, 3)), "presence"), (np.ones((3, 1)), "presence"), (np.full((2, 3), 2.0), "0 and 1"),
    (np.ones(4), "presence")])
def test_bad_presence_is_refused(presence, message):
    with pytest.raises(ValueError, match=message):
        word_vectors.cooccurrence(presence)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="counts"):
        word_vectors.ppmi(np.ones((2, 3)))
    with pytest.raises(ValueError, match="counts"):
        word_vectors.ppmi(-np.ones((2, 2)))
    with pytest.raises(ValueError, match="dim"):
        word_vectors.word_vectors(PRESENCE, dim=4)
    with pytest.raises(ValueError, match="dim"):
        word_vectors.word_vectors(PRESENCE, dim=0)
    with pytest.raises(ValueError, match="vectors"):
        word_vectors.document_vectors(PRESENCE, np.ones((2, 2)))
