"""Word vectors from co-occurrence counts: a tiny, self-supervised stand-in for a pretrained encoder.

A pretrained language model knows that *passkey* and *password* mean similar things because it read
both in similar company, without any labels. The oldest way to get that from raw text is to count:

1. **Co-occurrence.** ``C[a, b]`` counts the documents that contain both word ``a`` and word ``b``.
2. **Positive pointwise mutual information.** ``PMI(a, b) = log(C[a, b] * total / (C[a] * C[b]))``
   compares how often two words meet with how often they would by chance; negative and undefined
   values are set to 0 (PPMI).
3. **Truncated SVD.** ``PPMI = U S V^T``; the rows of ``U[:, :d] sqrt(S[:d])`` are ``d``-dimensional
   word vectors. Levy & Goldberg (2014) showed that word2vec's skip-gram with negative sampling
   implicitly factorises a shifted PMI matrix, so this is the counting cousin of a learned embedding.

A document's vector is the normalised sum of its words' vectors. Two words that never share a
document but share their neighbours (synonyms) end up close: that is what lets a model trained on
old words read a new one.
"""
from __future__ import annotations

import numpy as np

from helpers.validation import check_int


def _check_presence(presence: np.ndarray) -> np.ndarray:
    presence = np.asarray(presence, dtype=np.float64)
    if presence.ndim != 2 or presence.shape[0] == 0 or presence.shape[1] < 2:
        raise ValueError(f"presence must have shape (documents >= 1, words >= 2), got {presence.shape}")
    if not np.all((presence == 0) | (presence == 1)):
        raise ValueError("presence must hold only 0 and 1 (does document i contain word j?)")
    return presence


def cooccurrence(presence: np.ndarray) -> np.ndarray:
    """``C[a, b]``: how many documents contain both words ``a`` and ``b`` (0 on the diagonal)."""
    presence = _check_presence(presence)
    counts = presence.T @ presence                                          # (words, words)
    np.fill_diagonal(counts, 0.0)
    return counts


def ppmi(counts: np.ndarray) -> np.ndarray:
    """Positive pointwise mutual information of a symmetric co-occurrence matrix.

    ``max(0, log(C[a, b] * total / (row[a] * row[b])))``, and 0 wherever a count is 0.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or np.any(counts < 0):
        raise ValueError(f"counts must be a square non-negative matrix, got shape {counts.shape}")
    total = counts.sum()
    row = counts.sum(axis=1, keepdims=True)                                 # (words, 1)
    expected = row * row.T / max(total, 1e-300)                             # counts if words met by chance
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts / expected)
    return np.where((counts > 0) & (pmi > 0), pmi, 0.0)


def word_vectors(presence: np.ndarray, dim: int = 24) -> np.ndarray:
    """``(words, dim)`` vectors: the truncated SVD of the PPMI matrix, ``U[:, :dim] * sqrt(S[:dim])``."""
    check_int("dim", dim, 1, 10_000)
    association = ppmi(cooccurrence(presence))                              # (words, words)
    if dim > association.shape[0]:
        raise ValueError(f"dim must be at most the number of words ({association.shape[0]}), got {dim}")
    left, singular, _ = np.linalg.svd(association)
    return left[:, :dim] * np.sqrt(singular[:dim])


def document_vectors(presence: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each document's vector: the sum of its words' vectors, scaled to unit length (0 if it has none)."""
    presence = _check_presence(presence)
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != presence.shape[1]:
        raise ValueError(f"vectors must have shape ({presence.shape[1]}, dim), got {vectors.shape}")
    summed = presence @ vectors                                             # (documents, dim)
    return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
