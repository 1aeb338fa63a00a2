"""Notebook 05, NaN hunting."""
import math

import pytest

from helpers.experiments import nb05_debugging_nan


def test_the_guard_and_replay_name_the_log_and_the_library_loss_stays_finite():
    naive = nb05_debugging_nan.hunt(seed=0, steps=10)
    assert naive.guard_step is not None and naive.origin == "LogBackward0"
    assert naive.nan_loss_step is not None and naive.guard_step <= naive.nan_loss_step
    assert naive.bad_parameters >= 1 and naive.parameters == 8
    library = nb05_debugging_nan.hunt(seed=0, steps=10, naive=False)
    assert library.guard_step is None and library.nan_loss_step is None and len(library.losses) == 10
    assert all(math.isfinite(loss) for loss in library.losses)
    assert nb05_debugging_nan.figure(naive, library).axes[0].has_data()
    with pytest.raises(ValueError, match="lr"):
        nb05_debugging_nan.hunt(lr=0.0)
    with pytest.raises(ValueError, match="steps"):
        nb05_debugging_nan.hunt(steps=0)


def test_overheads_time_the_three_kinds_of_step():
    costs = nb05_debugging_nan.overheads(seed=0, rounds=1)
    assert set(costs) == {"plain", "guard", "anomaly"} and costs["anomaly"] > costs["plain"] > 0
