"""Notebook 08, part 2: training with checkpoints, the cost table, the shipping rule, calibration, routing, int8."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from helpers import models
from helpers.experiments import nb08_traps_and_checklist_models as shipping


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(600, 20)) < 0.3).astype(np.float32)
    labels = (x[:, :3].sum(axis=1) + (x[:, 3] * x[:, 4])).astype(int).clip(0, 3)
    rows = {"train": np.arange(400), "validation": np.arange(400, 500), "test": np.arange(500, 600)}
    return shipping.to_splits(x, rows, labels, labels, labels)


@pytest.fixture(scope="module")
def run(splits):
    return shipping.train_mlp(splits, width=16, epochs=4, lr=1e-2, seed=0, progress=False)


def test_macro_f1_matches_scikit_learn():
    rng = np.random.default_rng(1)
    predicted, labels = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predicted[predicted == 3] = 2                                             # a class never predicted scores 0
    assert shipping.macro_f1(predicted, labels, 4) == pytest.approx(f1_score(labels, predicted, average="macro"))


def test_snapshots_let_one_run_be_stopped_by_every_rule(splits, run):
    assert len(run.snapshots.states) == 5 and run.history.epoch == [0, 1, 2, 3, 4]
    assert run.epoch_by("last epoch") == 4
    assert run.epoch_by("validation accuracy") == 1 + int(np.argmax(run.history.val_acc[1:]))
    assert run.epoch_by("validation loss") == 1 + int(np.argmin(run.history.val_loss[1:]))
    kept = run.epoch_by("validation accuracy")
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, run.snapshots.states[kept][name])
    untrained = run.at(0)
    assert not torch.equal(untrained.head.weight, run.model.head.weight)
    assert not untrained.training
    with pytest.raises(ValueError, match="rule"):
        run.epoch_by("training loss")
    with pytest.raises(ValueError, match="epoch"):
        run.at(9)


def test_loss_by_group_splits_the_mean(splits, run):
    group = np.arange(len(splits.y_val)) % 4 == 0
    losses = shipping.loss_by_group(run, splits.x_val, splits.y_val, group)
    assert all(len(values) == 5 for values in losses.values())
    mixed = group.mean() * losses["True"] + (1 - group.mean()) * losses["False"]
    np.testing.assert_allclose(losses["all"], mixed, rtol=1e-5)


def test_ensemble_averages_probabilities(run):
    x = torch.randn(7, 20)
    single = shipping.Ensemble([run.model, run.model])(x)
    torch.testing.assert_close(single, torch.log_softmax(run.model(x), dim=-1), atol=1e-5, rtol=1e-5)
    other = run.at(0)
    mixed = shipping.Ensemble([run.model, other])(x).exp()
    expected = (torch.softmax(run.model(x), -1) + torch.softmax(other(x), -1)) / 2
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=1e-5)


def test_quantized_copy_is_smaller_and_agrees(run, splits):
    int8 = shipping.quantize(run.model)
    assert next(run.model.parameters()).dtype == torch.float32              # the original is untouched
    served = shipping.serve_torch("int8", int8), shipping.serve_torch("float", run.model)
    wide = models.mlp(20, 4, width=256)
    assert 3.5 < models.serialized_size(wide) / shipping.serve_torch("int8", shipping.quantize(wide)).size_bytes < 4
    x = splits.x_test.numpy()
    agreement = np.mean(served[0].predict_proba(x).argmax(1) == served[1].predict_proba(x).argmax(1))
    assert agreement > 0.9
    np.testing.assert_allclose(served[1].predict_proba(x).sum(axis=1), 1.0, rtol=1e-5)


def test_call_times_time_every_input_for_every_model():
    calls = []
    times = shipping.call_times({"a": lambda x: calls.append(("a", x)), "b": lambda x: calls.append(("b", x))},
                                inputs=[1, 2, 3, 4, 5], block=2)
    assert {name: len(values) for name, values in times.items()} == {"a": 5, "b": 5}
    assert calls[:6] == [("a", 1), ("a", 1), ("a", 2), ("b", 1), ("b", 1), ("b", 2)]   # warm-up, then the block
    with pytest.raises(ValueError, match="at least one"):
        shipping.call_times({}, [1])


def test_cost_table_scores_and_times_each_model(run, splits):
    served = [shipping.serve_torch("mlp", run.model), shipping.serve_torch("int8", shipping.quantize(run.model))]
    x, labels = splits.x_test.numpy(), splits.y_test.numpy()
    table = shipping.cost_table(served, x, labels, 4, single_calls=10, batch_calls=2, batch_size=16)
    assert [row["model"] for row in table] == ["mlp", "int8"]
    row = table[0]
    assert row["accuracy"] == pytest.approx(np.mean(served[0].predict_proba(x).argmax(1) == labels))
    assert 0 < row["fastest ms"] <= row["p50 ms"] <= row["p95 ms"]
    assert row["messages/s at 256"] > 0 and row["size kB"] > 0


TABLE = [{"model": "tiny", "macro-F1": 0.70, "p50 ms": 0.01, "p95 ms": 0.02},
         {"model": "mid", "macro-F1": 0.74, "p50 ms": 0.05, "p95 ms": 0.1},
         {"model": "big", "macro-F1": 0.745, "p50 ms": 0.3, "p95 ms": 0.5},
         {"model": "slow", "macro-F1": 0.80, "p50 ms": 2.0, "p95 ms": 5.0}]


@pytest.mark.parametrize("budget, tolerance, expected", [(1.0, 0.01, "mid"), (1.0, 0.0, "big"), (1.0, 0.05, "tiny"),
                                                          (10.0, 0.01, "slow"), (0.05, 0.01, "tiny"),
                                                          (0.01, 0.01, None)])
def test_ship_picks_the_cheapest_model_near_the_best_within_budget(budget, tolerance, expected):
    shipped, reason = shipping.ship(TABLE, budget, tolerance)
    assert shipped == expected
    assert (expected is None) == ("no model" in reason)


def test_ship_explorer_draws_and_explains_nothing_shipping():
    fig, numbers = shipping.ship_explorer(0.01, 0.01, table=TABLE)
    assert fig.axes[0].has_data() and numbers["ships"] == "nothing" and "No model" in numbers["note"]
    fig, numbers = shipping.ship_explorer(1.0, 0.01, table=TABLE)
    assert numbers["ships"] == "mid" and "note" not in numbers
    with pytest.raises(ValueError, match="table"):
        shipping.ship_explorer(1.0, 0.01)
    with pytest.raises(ValueError, match="p95_budget_ms"):
        shipping.ship(TABLE, 0.0, 0.01)


def test_softmax_temperature_and_its_fit():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(shipping.softmax(logits).sum(axis=1), 1.0)
    np.testing.assert_allclose(shipping.softmax(logits, 2.0), shipping.softmax(logits / 2.0))
    rng = np.random.default_rng(0)
    base = rng.normal(0, 2, (3000, 4))
    labels = np.array([rng.choice(4, p=p) for p in shipping.softmax(base)])
    fitted = shipping.fit_temperature(base, labels)
    assert 0.85 < fitted < 1.15                                               # labels drawn at T = 1
    assert shipping.fit_temperature(3 * base, labels) == pytest.approx(3 * fitted, rel=1e-3)


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.8, 0.2], [0.6, 0.4]])
    assert shipping.expected_calibration_error(probs, np.array([0, 1]), bins=10) == pytest.approx(0.4)
    assert shipping.expected_calibration_error(probs, np.array([0, 0]), bins=1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="bins"):
        shipping.expected_calibration_error(probs, np.array([0, 0]), bins=0)


def test_wilson_lower_bound_matches_the_textbook_value():
    assert shipping.wilson_lower(8, 10) == pytest.approx(0.4902, abs=1e-4)
    assert shipping.wilson_lower(80, 100) < 0.8 < shipping.wilson_lower(800, 1000) + 0.03
    assert shipping.wilson_lower(0, 5) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="trials"):
        shipping.wilson_lower(3, 2)


def test_routing_threshold_by_hand():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    # Top-k accuracies: 1, 1, 2/3, 3/4, 3/5; the largest k reaching 0.75 is k = 4.
    assert shipping.routing_threshold(confidence, correct, 0.75, "point estimate") == 0.6
    assert shipping.routing_threshold(confidence, correct, 0.75, "Wilson lower bound") == math.inf
    assert shipping.routing_threshold(confidence[:0], correct[:0], 0.5, "point estimate") == math.inf
    with pytest.raises(ValueError, match="rule"):
        shipping.routing_threshold(confidence, correct, 0.75, "median")


def test_segment_routing_reports_each_segment():
    validation = {"confidence": np.array([0.9, 0.8, 0.9, 0.4]), "correct": np.array([True, True, True, False]),
                  "segment": np.array([0, 0, 1, 1])}
    test = {"confidence": np.array([0.95, 0.5, 0.85, 0.3]), "correct": np.array([False, True, True, True]),
            "segment": np.array([0, 0, 1, 1])}
    rows = shipping.segment_routing(validation, test, ["a", "b"], 0.9, "point estimate")
    assert [row["threshold"] for row in rows] == [0.8, 0.9]
    assert rows[0]["coverage"] == 0.5 and rows[0]["misrouted"] == 1 and rows[0]["routed accuracy"] == 0.0
    assert rows[1]["coverage"] == 0.0 and math.isnan(rows[1]["routed accuracy"])


def test_trees_neighbours_and_figures(run, splits):
    x, labels = splits.x_train.numpy(), splits.y_train.numpy()
    trees, neighbours = shipping.tree_and_neighbours(x, labels, seed=0)
    assert trees.score(x, labels) > 0.5 and neighbours.score(x, labels) > 0.5
    losses = shipping.loss_by_group(run, splits.x_val, splits.y_val, np.arange(100) % 2 == 0)
    assert shipping.stopping_figure(run, losses).axes[0].has_data()
    probs = shipping.softmax(shipping.logits(run.model, splits.x_test))
    assert shipping.reliability_figure({"model": probs}, splits.y_test.numpy()).axes[0].has_data()
    np.testing.assert_array_equal(shipping.predict(run.model, splits.x_test), probs.argmax(axis=1))
