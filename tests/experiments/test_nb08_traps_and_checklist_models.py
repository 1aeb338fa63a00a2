"""Notebook 08, part 2: training with checkpoints, the cost table, the shipping rule, int8, the lookup."""
from __future__ import annotations

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
    ordinary = np.arange(len(labels)) % 3 > 0
    table = shipping.cost_table(served, x, labels, 4, ordinary, single_calls=10, batch_calls=2, batch_size=16)
    assert [row["model"] for row in table] == ["mlp", "int8"]
    row = table[0]
    right = served[0].predict_proba(x).argmax(1) == labels
    assert row["accuracy"] == pytest.approx(np.mean(right))
    assert row["accuracy, ordinary messages"] == pytest.approx(np.mean(right[ordinary]))
    assert 0 < row["fastest ms"] <= row["p50 ms"] <= row[shipping.P95]
    assert row["messages/s at 256"] > 0 and row["size kB"] > 0
    assert "accuracy, ordinary messages" not in shipping.cost_table(served, x, labels, 4, single_calls=5,
                                                                    batch_calls=1, batch_size=4)[0]
    with pytest.raises(ValueError, match="ordinary"):
        shipping.cost_table(served, x, labels, 4, ordinary[:5])


def test_served_logits_give_the_served_probabilities(run, splits):
    x = splits.x_test.numpy()
    for served in (shipping.serve_torch("mlp", run.model),
                   shipping.serve_sklearn("trees", shipping.tree_and_neighbours(x, splits.y_test.numpy())[0]),
                   shipping.serve_sklearn("neighbours", shipping.tree_and_neighbours(x, splits.y_test.numpy())[1])):
        logits = served.logits(x)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probs / probs.sum(axis=1, keepdims=True), served.predict_proba(x), atol=1e-5)


def test_word_dropout_deletes_inputs_only_while_training(splits):
    run = shipping.train_mlp(splits, width=16, epochs=2, lr=1e-2, seed=0, word_dropout=0.5, progress=False)
    assert isinstance(run.model[0], torch.nn.Dropout) and run.model[0].p == 0.5
    x = splits.x_test[:5]
    torch.testing.assert_close(run.model.eval()(x), run.model[1](x))
    with pytest.raises(ValueError, match="word_dropout"):
        shipping.train_mlp(splits, width=16, epochs=1, lr=1e-2, seed=0, word_dropout=0.95)


TABLE = [{"model": "tiny", "macro-F1": 0.70, "p50 ms": 0.01, shipping.P95: 0.02},
         {"model": "mid", "macro-F1": 0.74, "p50 ms": 0.05, shipping.P95: 0.1},
         {"model": "big", "macro-F1": 0.745, "p50 ms": 0.3, shipping.P95: 0.5},
         {"model": "slow", "macro-F1": 0.80, "p50 ms": 2.0, shipping.P95: 5.0}]


@pytest.mark.parametrize("budget, tolerance, expected", [(1.0, 0.01, "mid"), (1.0, 0.0, "big"), (1.0, 0.05, "tiny"),
                                                          (10.0, 0.01, "slow"), (0.05, 0.01, "mid"),
                                                          (0.02, 0.01, "tiny"), (0.005, 0.01, None)])
def test_ship_picks_the_cheapest_model_near_the_best_within_budget(budget, tolerance, expected):
    shipped, reason = shipping.ship(TABLE, budget, tolerance)
    assert shipped == expected
    assert (expected is None) == ("no model" in reason)


def test_ship_explorer_draws_and_explains_nothing_shipping():
    fig, numbers = shipping.ship_explorer(0.005, 0.01, table=TABLE)
    assert fig.axes[0].has_data() and numbers["ships"] == "nothing" and "No model" in numbers["note"]
    fig, numbers = shipping.ship_explorer(1.0, 0.01, table=TABLE)
    assert numbers["ships"] == "mid" and "note" not in numbers
    with pytest.raises(ValueError, match="table"):
        shipping.ship_explorer(1.0, 0.01)
    with pytest.raises(ValueError, match="p50_budget_ms"):
        shipping.ship(TABLE, 0.0, 0.01)


def test_duplicate_lookup_reads_labels_recorded_two_hours_earlier():
    day = np.array([0.0, 0.01, 0.5, 0.6, 3.0, 3.2])
    words = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]], dtype=float)
    labels = np.array([3, 3, 4, 1, 2, 0])
    # Row 1 is too soon after row 0 (labels arrive two hours later); row 2 finds row 0 or 1; row 3 has no twin;
    # row 4 is more than two days after every twin; row 5 (cosine 0.5 with row 4) is too recent for it anyway.
    found = shipping.duplicate_lookup(day, words, labels, np.arange(6), similarity=0.8)
    np.testing.assert_array_equal(found, [-1, -1, 3, -1, -1, -1])
    assert shipping.duplicate_lookup(day, words, labels, np.array([3]), similarity=0.0)[0] == 3   # first of ties
    with pytest.raises(ValueError, match="similarity"):
        shipping.duplicate_lookup(day, words, labels, np.arange(6), similarity=1.5)
    with pytest.raises(ValueError, match="sorted"):
        shipping.duplicate_lookup(day[::-1], words, labels, np.arange(6))


def test_lookup_table_counts_answers_and_gains_per_population():
    predicted = np.array([0, 1, 2, 0, 1, 2])
    found = np.array([1, -1, -1, 2, -1, 2])
    truth = np.array([1, 1, 0, 2, 1, 2])
    copies = np.array([True, False, False, True, False, False])
    rows = {row["population"]: row for row in shipping.lookup_table(predicted, found, truth, copies, 3)}
    assert rows["incident copies"]["answered by the lookup"] == 1.0
    copied = rows["incident copies"]
    assert copied["accuracy, model"] == 0.0 and copied["accuracy, model + lookup"] == 1.0
    assert rows["ordinary messages"]["accuracy, model"] == 0.75 == rows["ordinary messages"]["accuracy, model + lookup"]
    assert rows["all messages"]["messages"] == 6 and rows["all messages"]["answered by the lookup"] == 0.5
    assert rows["all messages"]["macro-F1, model + lookup"] > rows["all messages"]["macro-F1, model"]


def test_trees_neighbours_and_figures(run, splits):
    x, labels = splits.x_train.numpy(), splits.y_train.numpy()
    trees, neighbours = shipping.tree_and_neighbours(x, labels, seed=0)
    assert trees.score(x, labels) > 0.5 and neighbours.score(x, labels) > 0.5
    losses = shipping.loss_by_group(run, splits.x_val, splits.y_val, np.arange(100) % 2 == 0)
    fig = shipping.stopping_figure(run, losses, {rule: 0.5 for rule in shipping.STOP_RULES})
    assert fig.axes[0].has_data() and any("future macro-F1 0.500" in text.get_text() for text in fig.axes[1].texts)
    low, high = fig.axes[1].get_ylim()
    assert high - low >= 0.1 and low > 0                                       # zoomed, but not onto noise
    np.testing.assert_array_equal(shipping.predict(run.model, splits.x_test),
                                  shipping.logits(run.model, splits.x_test).argmax(axis=1))
