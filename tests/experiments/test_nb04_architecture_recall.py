"""Notebook 04, section 2: the associative-recall task, its models, training runs and explorer."""
from __future__ import annotations

import pytest
import torch

from helpers import models
from helpers.experiments import nb04_architecture_recall as recall


def test_batches_hold_distinct_keys_and_the_answer_is_the_queried_value():
    batch = recall.make_batch(50, 5, torch.Generator().manual_seed(0))
    assert batch.keys.shape == batch.values.shape == (50, 5)
    for row in range(50):
        assert len(set(batch.keys[row].tolist())) == 5
        position = int(batch.matching[row])
        assert batch.keys[row, position] == batch.query[row]
        assert batch.values[row, position] == batch.answer[row]
    assert batch.keys.max() < recall.N_KEYS and batch.values.max() < recall.N_VALUES


def test_distance_appends_blank_tokens():
    batch = recall.make_batch(4, 1, torch.Generator().manual_seed(1), distance=3)
    assert batch.keys.shape == (4, 4)
    assert torch.all(batch.keys[:, 1:] == recall.BLANK_KEY) and torch.all(batch.values[:, 1:] == recall.BLANK_VALUE)
    assert torch.all(batch.matching == 0)


@pytest.mark.parametrize("kwargs, name", [({"pairs": 0}, "pairs"), ({"pairs": recall.N_KEYS + 1}, "pairs"),
                                          ({"size": 0}, "size"), ({"distance": -1}, "distance")])
def test_batch_arguments_are_checked(kwargs, name):
    arguments = {"size": 2, "pairs": 2, "distance": 0} | kwargs
    with pytest.raises(ValueError, match=name):
        recall.make_batch(arguments["size"], arguments["pairs"], torch.Generator(), arguments["distance"])


def test_models_map_a_batch_to_value_logits():
    batch = recall.make_batch(3, 4, torch.Generator().manual_seed(2))
    for model in (recall.AttentionRecall(8), recall.GRURecall(8)):
        assert model(batch).shape == (3, recall.N_VALUES)
    _, weights = recall.AttentionRecall(8)(batch, return_weights=True)
    assert weights.shape == (3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))


def test_attention_learns_one_pair_quickly_and_runs_record_checkpoints():
    run = recall.train("attention", 1, 60, 1e-2, width=16, checkpoints=3)
    assert run.steps == [0, 20, 40, 60]
    assert run.at(60) == run.final() > 0.9
    with pytest.raises(ValueError, match="checkpoints"):
        run.at(30)
    assert recall.weight_on_match(run) > 0.5  # one pair plus the query: uniform weight 0.5
    assert models.count_parameters(run.model) > 0


def test_training_is_reproducible_for_a_seed():
    first = recall.train("GRU", 2, 5, 1e-2, width=8, seed=3, checkpoints=1)
    second = recall.train("GRU", 2, 5, 1e-2, width=8, seed=3, checkpoints=1)
    assert first.accuracy == second.accuracy


def test_training_reports_progress_to_the_end():
    seen = []
    recall.train("GRU", 2, 10, 1e-2, width=8, checkpoints=2, progress=seen.append)
    assert len(seen) == 10 and seen[-1] == 1.0


@pytest.mark.parametrize("kwargs, name", [({"model_name": "lstm"}, "model_name"), ({"steps": 0}, "steps"),
                                          ({"lr": 0.0}, "lr"), ({"width": 0}, "width"),
                                          ({"checkpoints": 20}, "checkpoints")])
def test_training_arguments_are_checked(kwargs, name):
    arguments = {"model_name": "GRU", "pairs": 2, "steps": 10, "lr": 1e-2} | kwargs
    with pytest.raises(ValueError, match=name):
        recall.train(**arguments)


def test_weight_on_match_needs_an_attention_run():
    run = recall.train("GRU", 2, 2, 1e-2, width=8, checkpoints=1)
    with pytest.raises(ValueError, match="attention run"):
        recall.weight_on_match(run)


def test_plots_and_table():
    runs = {"attention": recall.train("attention", 3, 4, 1e-2, width=8, checkpoints=2),
            "GRU": recall.train("GRU", 3, 4, 1e-2, width=8, checkpoints=2)}
    assert recall.plot_runs(runs, "title").axes[0].has_data()
    assert len(recall.plot_runs(runs, "title", key_blind=0.3).axes[0].lines) == len(runs) + 2
    assert len(recall.plot_weights(runs["attention"], examples=2).axes) == 2
    rows = recall.gap_table(runs, ["GRU"])
    assert rows[0]["steps"] == 4 and rows[0]["run"] == "GRU"


def test_explorer_reports_progress_and_notes_when_nothing_was_learned():
    seen = []
    fig, numbers = recall.recall_explorer(pairs=32, steps=20, width=8, progress=seen.append)
    assert fig.axes[0].has_data()
    assert set(numbers) >= {"attention accuracy", "best GRU accuracy", "chance"}
    assert numbers["best GRU accuracy"] < 2 / recall.N_VALUES and "note" in numbers
    assert seen[-1] == pytest.approx(1.0) and min(b - a for a, b in zip(seen, seen[1:])) >= 0
    assert max(b - a for a, b in zip([0.0, *seen], seen)) <= 0.1  # progress at least every 10%


@pytest.mark.parametrize("kwargs, name", [({"pairs": 33}, "pairs"), ({"steps": 10}, "steps"),
                                          ({"steps": 301}, "steps"), ({"width": 4}, "width"),
                                          ({"width": 65}, "width")])
def test_explorer_checks_its_controls(kwargs, name):
    with pytest.raises(ValueError, match=name):
        recall.recall_explorer(**kwargs)


def test_key_blind_rule_matches_hand_computed_expectations():
    assert recall.key_blind_accuracy(1) == 1.0
    # two values: equal with probability 1/8 (always right), else a coin flip between them
    assert recall.key_blind_accuracy(2) == pytest.approx(1 / 8 + 7 / 8 * 0.5, abs=0.03)
    assert 1 / recall.N_VALUES < recall.key_blind_accuracy(8) < 0.4
    with pytest.raises(ValueError, match="pairs"):
        recall.key_blind_accuracy(0)
