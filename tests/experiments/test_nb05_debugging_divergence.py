"""Notebook 05, train/validation divergence."""
import numpy as np
import pytest

from helpers.experiments import nb05_debugging, nb05_debugging_divergence


@pytest.fixture(scope="module")
def healthy_run():
    from helpers.scratch.pipeline import train

    return train(nb05_debugging.healthy("mnist1d", seed=0), steps=60)


def test_the_divergence_explorer_names_the_audit_that_fires(healthy_run):
    fig, numbers = nb05_debugging_divergence.explore_divergence(0.3, 0.0, steps=60, run=healthy_run)
    assert all(ax.has_data() for ax in fig.axes)
    assert numbers["near-duplicate share"] >= 0.25 and "near-duplicating" in numbers["first failing check"]
    _, numbers = nb05_debugging_divergence.explore_divergence(0.0, 1.5, steps=60, run=healthy_run)
    assert numbers["adversarial AUC"] > 0.8 and numbers["validation - test"] < -0.1
    _, numbers = nb05_debugging_divergence.explore_divergence(0.0, 0.0, steps=60, run=healthy_run)
    assert numbers["first failing check"] == "none" and "note" not in numbers
    for bad in ({"leak_fraction": 0.6}, {"shift_size": -1.0}, {"steps": 5}):
        with pytest.raises(ValueError):
            nb05_debugging_divergence.explore_divergence(**bad)


def test_time_drift_compares_a_random_and_a_time_split():
    drift = nb05_debugging_divergence.time_drift(seed=0, steps=60, buckets=5)
    assert 0 < drift.random_future < drift.random_val <= 1 and 0 < drift.time_val <= 1
    assert len(drift.bucket_centres) == len(drift.bucket_accuracy) == 5
    assert drift.bucket_accuracy[0] > drift.bucket_accuracy[-1]
    assert drift.time_bucket_centres[0] >= 0.5 and len(drift.time_bucket_centres) == len(drift.time_bucket_accuracy)

    assert nb05_debugging_divergence.drift_figure(drift).axes[0].has_data()
    with pytest.raises(ValueError, match="drift"):
        nb05_debugging_divergence.time_drift(drift=-1.0)
    with pytest.raises(ValueError, match="buckets"):
        nb05_debugging_divergence.time_drift(buckets=1)


def test_accuracy_by_time_averages_each_non_empty_bucket():
    centres, accuracy = nb05_debugging_divergence.accuracy_by_time(
        np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.1, 0.2, 0.7, 0.9]), 2)
    assert centres == [0.25, 0.75] and accuracy == [0.5, 1.0]
    assert nb05_debugging_divergence.accuracy_by_time(np.array([1.0]), np.array([0.9]), 4) == ([0.875], [1.0])


def test_recall_figure_draws_every_run():
    fig = nb05_debugging_divergence.recall_figure({"a": [0.5, 1.0, float("nan")], "b": [0.0, 0.2, 0.3]}, 0, "rare")
    assert len(fig.axes[0].patches) >= 6
