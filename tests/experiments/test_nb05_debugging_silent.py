"""Notebook 05, silent broadcasting and truncation."""
import pytest
import torch

from helpers.experiments import nb05_debugging_silent as silent


def test_a_flat_target_broadcasts_and_learns_nothing():
    column, flat = silent.fit_regression("column", steps=150), silent.fit_regression("flat", steps=150)
    assert column.r2 > 0.5 and column.perfect_loss == 0.0 and column.warning is None
    assert flat.r2 < 0.1 and flat.perfect_loss > 0.5 and "target size" in flat.warning
    with pytest.raises(ValueError, match="target"):
        silent.fit_regression("row")


def test_keyword_sequences_and_their_truncated_bag_of_words():
    tokens, lengths, labels = silent.keyword_sequences(n=50, seed=1)
    assert tokens.shape == (50, 64) and lengths.min() >= 8
    for row in range(50):
        real = tokens[row, :lengths[row]]
        assert (tokens[row, lengths[row]:] == 0).all() and (real > 0).all()
        assert ((real >= 1) & (real <= silent.KEYWORDS)).sum() == 1 and (real == labels[row] + 1).any()
    counts = silent.bag_of_words(tokens, 10)
    assert counts.shape == (50, silent.VOCABULARY) and torch.equal(counts.sum(1), lengths.clamp(max=10).float())


def test_truncation_hurts_only_long_sequences():
    cut, uncut = silent.truncation(32), silent.truncation(64)
    assert cut["by length"]["8-31"] > 0.95 and cut["by length"]["48-64"] < 0.85
    assert min(uncut["by length"].values()) > 0.95 and uncut["truncated share"] == 0.0
    assert 0.4 < cut["truncated share"] < 0.7
    assert silent.truncation_figure([cut, uncut]).axes[0].has_data()
