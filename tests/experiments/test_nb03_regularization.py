"""Tests for notebook 03's experiment modules: recipes and runs, the lever table, BatchNorm, noisy labels,
selection, memorisation, the explorers and the exercise checkers (which never raise)."""
from __future__ import annotations

import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from helpers import data, models, train
from helpers.experiments import nb03_regularization_levers as levers
from helpers.experiments import nb03_regularization_noise as noise
from helpers.scratch import regularizers

TINY = levers.Recipe(width=16, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def tiny_split():
    return data.mnist1d(n_train=100, seed=0, device="cpu")


@pytest.fixture(scope="module")
def tiny_run(tiny_split):
    return levers.train_recipe(tiny_split, TINY, seed=0, progress=False)


def legend_is_outside(ax) -> bool:
    ax.figure.canvas.draw()
    legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    return legend.x0 >= frame.x1 - 1 or legend.y1 <= frame.y0 + 1


# --------------------------------------------------------------------------- recipes and runs
def test_train_recipe_records_weights_and_scores_with_and_without_temperature(tiny_run):
    history = tiny_run.history
    assert len(history.extra["weight_norm"]) == len(history.extra["distance_from_init"]) == TINY.epochs + 1
    assert history.extra["distance_from_init"][0] == 0.0 < history.extra["distance_from_init"][-1]
    assert 0 <= tiny_run.test_acc <= 1 and tiny_run.test_nll > 0 and 0 <= tiny_run.test_ece <= 1
    assert 0.01 <= tiny_run.temperature <= 100 and tiny_run.scaled_nll > 0 and 0 <= tiny_run.scaled_ece <= 1


def test_score_matches_a_hand_computation(tiny_split, tiny_run):
    numbers = levers.score(tiny_run.model, tiny_split)
    logits = train.predict_logits(tiny_run.model, tiny_split.x_test)
    assert numbers["test_acc"] == pytest.approx((logits.argmax(-1) == tiny_split.y_test).float().mean().item())
    scaled = nn.functional.cross_entropy(logits / numbers["temperature"], tiny_split.y_test).item()
    assert numbers["scaled_nll"] == pytest.approx(scaled, rel=1e-5)


def test_train_recipe_is_reproducible_per_seed(tiny_split):
    first = levers.train_recipe(tiny_split, TINY, seed=3, progress=False)
    second = levers.train_recipe(tiny_split, TINY, seed=3, progress=False)
    assert first.history.val_loss == second.history.val_loss


def test_row_reports_the_restored_weights_after_early_stopping(tiny_split):
    run = levers.train_recipe(tiny_split, replace(TINY, epochs=8, patience=1, lr=0.05), seed=0, progress=False)
    restored = run.history.restored_epoch
    assert restored is not None and run.row()["epoch kept"] == restored
    assert run.row()["train acc"] == run.history.at(restored)["train_acc"]


def test_every_lever_of_the_recipe_trains(tiny_split):
    recipe = levers.Recipe(width=16, epochs=3, shift=2, mixup_alpha=0.4, label_smoothing=0.1, patience=1,
                           monitor="val_acc", dropout=0.2, weight_decay=0.1, norm="batch", depth=3)
    run = levers.train_recipe(tiny_split, recipe, seed=0, progress=False)
    assert run.history.best_epoch is not None and len(run.history.epoch) <= 4


def test_the_cnn_recipe_builds_a_small_convolutional_net(tiny_split):
    cnn = levers.build_model(tiny_split, replace(TINY, model="cnn", channels=8))
    mlp = levers.build_model(tiny_split, replace(TINY, width=256))
    assert isinstance(cnn, models.CNN1D) and cnn.pooling == "average"
    assert models.count_parameters(cnn) < models.count_parameters(mlp)


def test_losses_use_the_from_scratch_smoothing_and_torch_for_soft_targets():
    smoothed = levers._loss(levers.Recipe(label_smoothing=0.1))
    assert smoothed.func is regularizers.smoothed_cross_entropy and smoothed.keywords == {"smoothing": 0.1}
    assert levers._loss(levers.Recipe(mixup_alpha=0.2)).func is nn.functional.cross_entropy
    assert levers._loss(levers.Recipe()) is None


def test_transform_shifts_and_mixes():
    x, y = torch.randn(8, 40), torch.arange(8) % 10
    assert levers._transform(levers.Recipe(), 10) is None
    shifted, same = levers._transform(levers.Recipe(shift=3), 10)(x, y)
    assert torch.equal(same, y) and torch.equal(shifted.sort(1).values, x.sort(1).values)
    _, soft = levers._transform(levers.Recipe(mixup_alpha=0.4), 10)(x, y)
    assert soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))


@pytest.mark.parametrize("kwargs, name", [
    (dict(width=0), "width"), (dict(width=5000), "width"), (dict(epochs=0), "epochs"), (dict(model="rnn"), "model"),
    (dict(dropout=1.0), "dropout"), (dict(label_smoothing=0.9), "label_smoothing"), (dict(norm="group"), "norm"),
    (dict(monitor="train_loss"), "monitor"), (dict(patience=0), "patience"), (dict(shift=-1), "shift"),
])
def test_recipe_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        levers.Recipe(**kwargs)


# --------------------------------------------------------------------------- the lever table and figures
def test_lever_recipes_change_one_thing_each():
    base = levers.Recipe()
    recipes = levers.lever_recipes(base, patience=5)
    assert recipes["baseline"] == base and recipes["more data (4x)"] == base
    assert set(recipes) == set(levers.LAYERS) - {"baseline + temperature scaling"}
    for name, recipe in recipes.items():
        changed = [k for k in base.__dataclass_fields__ if getattr(recipe, k) != getattr(base, k)]
        assert len(changed) <= 1, (name, changed)


def test_lever_rows_put_the_temperature_scaled_baseline_beside_the_baseline(tiny_run):
    other = replace(tiny_run, test_acc=tiny_run.test_acc + 0.1)
    rows = levers.lever_rows({"baseline": tiny_run, "dropout": other})
    assert [row["lever"] for row in rows] == ["baseline", "baseline + temperature scaling", "dropout"]
    assert rows[1]["test NLL"] == tiny_run.scaled_nll and rows[1]["test acc"] == tiny_run.test_acc
    assert rows[2]["change in test acc"] == pytest.approx(0.1) and rows[0]["change in test acc"] == 0


def test_plot_levers_sorts_bars_and_counts_the_levers(tiny_run):
    runs = {"baseline": tiny_run, "dropout": replace(tiny_run, test_acc=0.9),
            "weight decay": replace(tiny_run, test_acc=0.1)}
    fig = levers.plot_levers(runs)
    assert fig.get_suptitle().startswith("2 levers")
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert labels == ["weight decay", "dropout"]
    assert all(legend_is_outside(ax) for ax in fig.axes)


def test_size_sweep_reuses_known_runs_and_plots_a_tick_per_size(tiny_run):
    sweep = levers.size_sweep([100], TINY, known={100: tiny_run})
    assert sweep[100] is tiny_run
    fig = levers.plot_size_sweep({100: tiny_run, 400: tiny_run})
    assert list(fig.axes[0].get_xticks()) == [100, 400] and legend_is_outside(fig.axes[0])
    with pytest.raises(ValueError, match="sizes"):
        levers.size_sweep([5], TINY)


def test_overfitting_numbers():
    history = train.History(epoch=[0, 1, 2], train_loss=[1, .5, .1], train_acc=[.5, .8, 1.0],
                            val_loss=[2.0, 1.0, 1.5], val_acc=[.4, .5, .5])
    numbers = levers.overfitting_numbers(history)
    assert numbers["best val-loss epoch"] == 1 and numbers["val-loss rise"] == 0.5
    assert numbers["gap (train-val acc)"] == pytest.approx(0.5)


def test_plot_dropout_vs_decay(tiny_run):
    fig = levers.plot_dropout_vs_decay({"baseline": tiny_run, "dropout": tiny_run})
    assert len(fig.axes) == 4 and all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert legend_is_outside(fig.axes[1])


def test_run_levers_validates_its_sizes():
    with pytest.raises(ValueError, match="n_train"):
        levers.run_levers(10, TINY, patience=2)
    with pytest.raises(ValueError, match="data_factor"):
        levers.run_levers(100, TINY, patience=2, data_factor=1)


# --------------------------------------------------------------------------- BatchNorm
def test_batchnorm_runs_pair_each_batch_size_and_reuse_known(tiny_split, tiny_run):
    runs = levers.batchnorm_runs(tiny_split, TINY, (64,), known={("no BatchNorm", 64): tiny_run})
    assert set(runs) == {("no BatchNorm", 64), ("BatchNorm", 64)} and runs["no BatchNorm", 64] is tiny_run
    assert runs["BatchNorm", 64].recipe.norm == "batch"
    with pytest.raises(ValueError, match="batch_sizes"):
        levers.batchnorm_runs(tiny_split, TINY, (1,))


def test_variance_shift_compares_eval_variance_with_running_variance():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    x = torch.randn(5000, 4)
    with torch.no_grad():
        model[1].running_var.copy_(model[0](x).var(0) * 2)
    assert levers.variance_shift(model, x) == [pytest.approx(0.5, rel=1e-4)]
    assert model.training


def test_dropout_before_batchnorm_reports_the_shift_and_the_fix(tiny_split):
    result = levers.dropout_before_batchnorm(tiny_split, TINY, depth=3, dropout=0.5)
    assert len(result["shift before"]) == len(result["shift after"]) == 2
    assert max(result["shift before"]) < 0.8 and all(abs(r - 1) < 0.5 for r in result["shift after"])
    assert 0 <= result["test acc after fix"] <= 1 and not result["fixed"].training
    assert 0 <= result["test acc re-estimated with dropout on"] <= 1
    assert len(result["shift predicted by dropout alone"]) == 2


def test_variance_shift_predicted_by_dropout_alone_matches_a_hand_computation():
    model = nn.Sequential(nn.Identity(), nn.BatchNorm1d(1))
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])      # mean 1.5, E[h^2] = 3.5, population variance 1.25
    (prediction,) = levers.variance_shift(model, x, dropout=0.5)
    assert prediction == pytest.approx((5 / 3) / (3.5 / 0.5 - 1.5**2))  # unbiased sample variance on top


def test_reestimate_with_dropout_on_uses_train_mode_statistics_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(3)).eval()
    x = torch.randn(20_000, 3) + 1.0
    control = levers.reestimate_with_dropout_on(model, x)
    assert not control.training and torch.equal(model[1].running_var, torch.ones(3))
    # train-mode variance of dropout(x) = E[x^2]/q - E[x]^2 = 2/0.5 - 1 = 3
    assert control[1].running_var == pytest.approx(torch.full((3,), 3.0), rel=0.05)


# --------------------------------------------------------------------------- label smoothing on digits
def test_digits_smoothing_runs_train_the_same_mlp_twice():
    digits, runs = levers.digits_smoothing_runs(0.1, epochs=1, width=8)
    assert digits.name == "digits" and list(runs) == ["no smoothing", "smoothing 0.1"]
    assert runs["smoothing 0.1"].recipe.label_smoothing == 0.1
    with pytest.raises(ValueError, match="smoothing"):
        levers.digits_smoothing_runs(0.0, epochs=1, width=8)


# --------------------------------------------------------------------------- explorer and exercise
def test_overfitting_explorer_reports_progress_every_epoch():
    seen = []
    fig, numbers = levers.overfitting_explorer(dropout=0.2, n_train=500, epochs=10, width=64, progress=seen.append)
    assert len(seen) >= 11 and seen == sorted(seen) and seen[-1] == 1.0
    assert max(b - a for a, b in zip(seen, seen[1:])) <= 0.1 + 1e-9
    assert 0 <= numbers["test accuracy"] <= 1 and "train-validation gap" in numbers and "note" not in numbers
    assert all(legend_is_outside(ax) for ax in fig.axes)


def test_overfitting_explorer_says_when_the_network_did_not_learn():
    _, numbers = levers.overfitting_explorer(n_train=50, epochs=1, width=1, dropout=0.8)
    assert numbers["train accuracy"] < 0.2 and "chance" in numbers["note"]
    with pytest.raises(ValueError, match="n_train"):
        levers.overfitting_explorer(n_train=10)


def test_recipe_for_switches_on_the_named_levers():
    recipe = levers.recipe_for({"dropout", "shift augmentation", "early stopping"}, levers.Recipe(), patience=7)
    assert (recipe.dropout, recipe.shift, recipe.patience, recipe.weight_decay) == (0.5, 4, 7, 0.0)
    assert levers.recipe_for({"smaller model"}, levers.Recipe()).width == 32


def test_check_lever_choice_never_raises(capsys, monkeypatch, tiny_split, tiny_run):
    assert levers.check_lever_choice(None, tiny_run, tiny_split) is False
    assert "Not attempted" in capsys.readouterr().out
    assert levers.check_lever_choice({"more layers"}, tiny_run, tiny_split) is False
    assert "more layers" in capsys.readouterr().out
    accuracy = {True: tiny_run.test_acc + 0.2, False: tiny_run.test_acc}
    def fake_train(split, recipe, seed=0):
        return replace(tiny_run, recipe=recipe, test_acc=accuracy[recipe.shift > 0])
    monkeypatch.setattr(levers, "train_recipe", fake_train)
    assert levers.check_lever_choice({"shift augmentation", "dropout"}, tiny_run, tiny_split) is True
    assert levers.check_lever_choice({"dropout"}, tiny_run, tiny_split) is False
    assert "where the patterns sit" in capsys.readouterr().out
    accuracy[True] = tiny_run.test_acc + 0.01
    assert levers.check_lever_choice({"shift augmentation", "dropout"}, tiny_run, tiny_split) is False
    assert "fewer levers" in capsys.readouterr().out


def test_spoken_answer_quotes_the_numbers_in_about_150_words(tiny_run):
    runs = {name: tiny_run for name in levers.lever_recipes(TINY, patience=1)}
    text = levers.spoken_answer(runs, bn_gain=0.04, variance_seen=0.42, fix_gain=0.06, noisy_stopped=0.93,
                                noisy_ended=0.65)
    assert "+0.04" in text and "0.42" in text and "0.93" in text and "LayerNorm" in text
    assert 130 <= len(text.split()) <= 200


# --------------------------------------------------------------------------- noise: dropout
def test_dropout_statistics_match_theory_for_both_implementations():
    stats = noise.dropout_statistics(0.5, n=100_000)
    for who in ("ours", "nn.Dropout"):
        assert stats[f"variance ratio train/eval ({who})"] == pytest.approx(2.0, rel=0.03)
        assert stats[f"share zeroed ({who})"] == pytest.approx(0.5, abs=0.01)
    assert stats["mean train (ours)"] == pytest.approx(stats["mean eval"], abs=0.02)
    with pytest.raises(ValueError, match="p must"):
        noise.dropout_statistics(1.0)


def test_dropout_explorer_numbers_and_legends():
    fig, numbers = noise.dropout_explorer(dropout=0.3)
    assert numbers["theory for zero-mean inputs"] == pytest.approx(0.7)
    relu = torch.randn(1_000_000).clamp_min(0)                  # independent reference: moments by sampling
    expected = relu.var().item() / ((relu**2).mean().item() / 0.7 - relu.mean().item() ** 2)
    assert numbers["theory for ReLU inputs"] == pytest.approx(expected, rel=0.01)
    assert numbers["eval / running variance (measured)"] == pytest.approx(expected, rel=0.05)
    assert numbers["BatchNorm output scale in eval"] == pytest.approx(math.sqrt(expected), rel=0.05)
    assert numbers["share zeroed by dropout"] == pytest.approx(0.3, abs=0.02)
    assert all(legend_is_outside(ax) for ax in fig.axes)
    for ax in fig.axes:
        assert min(text.get_fontsize() for text in ax.get_legend().get_texts()) >= 9
    with pytest.raises(ValueError, match="dropout"):
        noise.dropout_explorer(dropout=1.0)


# --------------------------------------------------------------------------- noise: labels and early stopping
def test_noisy_accuracy_matches_a_simulation():
    torch.manual_seed(0)
    labels = torch.arange(200_000) % 10
    predictions = torch.where(torch.rand(len(labels)) < 0.7, labels, (labels + 3) % 10)   # clean accuracy 0.7
    noisy = noise.noisy_labels(labels, 0.4, 10, seed=2)
    measured = (predictions == noisy).float().mean().item()
    assert noise.noisy_accuracy(0.7, 0.4, 10) == pytest.approx(measured, abs=0.005)
    assert noise.noisy_accuracy(0.7, 0.9, 10) == pytest.approx(0.1)    # rate (K-1)/K: no signal left


def test_noisy_labels_flip_the_requested_share_to_other_classes():
    labels = torch.arange(20_000) % 10
    noisy = noise.noisy_labels(labels, 0.4, 10, seed=1)
    assert (noisy != labels).float().mean().item() == pytest.approx(0.4, abs=0.015)
    assert noisy.min() >= 0 and noisy.max() <= 9
    assert torch.equal(noise.noisy_labels(labels, 0.0, 10), labels)
    assert (noise.noisy_labels(labels, 1.0, 10) != labels).all()
    assert torch.bincount(noise.noisy_labels(labels, 1.0, 10)).min() > 1500  # the other classes uniformly
    with pytest.raises(ValueError, match="rate"):
        noise.noisy_labels(labels, 1.5, 10)


def test_probe_records_clean_test_accuracy_and_distance_from_init(tiny_split):
    torch.manual_seed(0)
    model = models.mlp(40, 10, width=8)
    probe = noise.Probe(tiny_split.x_test, tiny_split.y_test)
    train.fit(model, tiny_split, epochs=2, callbacks=[probe], progress=False)
    assert len(probe.test_acc) == len(probe.distance) == 3 and probe.distance[0] == 0 < probe.distance[2]
    assert probe.test_acc[-1] == train.evaluate(model, tiny_split.x_test, tiny_split.y_test)[1]


def test_label_noise_runs_train_to_the_end_and_with_early_stopping():
    result = noise.label_noise_runs(0.4, width=8, epochs=3, patience=1)
    assert result["noise in train"] == pytest.approx(0.4, abs=0.05)
    assert len(result["to the end"]["history"].epoch) == 4
    assert result["early stopping"]["history"].restored_epoch is not None
    assert result["rate"] == 0.4 and result["n_classes"] == 10
    fig = noise.plot_label_noise(result)
    assert len(fig.axes) == 2 and all(legend_is_outside(ax) for ax in fig.axes)


def test_spike_and_the_early_stopping_figure():
    history = train.History(epoch=list(range(7)), val_acc=[.3, .3, .3, .5, .3, .3, .3], val_loss=[1.0] * 7)
    assert noise.spike(history, 3, window=2) == pytest.approx(0.2)
    assert noise.spike(history, 0, window=2) == pytest.approx(0.0)
    fig = noise.plot_early_stopping(history, {"val_loss": 1, "val_acc": 3})
    assert legend_is_outside(fig.axes[1])


# --------------------------------------------------------------------------- noise: selection, confidence, memorisation
def test_best_of_many_measures_edges_over_the_mean(tiny_split):
    result = noise.best_of_many(models.mlp(40, 10, width=16), tiny_split, n_candidates=20, n_val=50)
    assert result["winner's validation accuracy"] == result["val_acc"].max()
    assert result["validation edge"] == pytest.approx(result["val_acc"].max() - result["val_acc"].mean())
    assert result["validation edge"] >= 0
    ratio = result["test_acc"].var() / result["val_acc"].var()
    assert result["predicted share that survives (at most)"] == pytest.approx(ratio)
    ax = noise.plot_best_of_many(result, orderings=7).axes[0]
    assert legend_is_outside(ax)
    winner_edge = ax.get_lines()[0].get_ydata()     # mean over orders of the running winner's validation edge
    assert winner_edge[-1] == pytest.approx(result["validation edge"]) and all(np.diff(winner_edge) >= -1e-12)
    with pytest.raises(ValueError, match="n_candidates"):
        noise.best_of_many(models.mlp(40, 10, width=4), tiny_split, n_candidates=1)


def test_confidence_summary_and_the_cap(tiny_split, tiny_run):
    summary = noise.confidence_summary(tiny_run.model, tiny_split)
    assert 0 < summary["mean confidence"] <= 1 and len(summary["confidence"]) == len(tiny_split.y_test)
    assert summary["share above the cap"] == pytest.approx((summary["confidence"] > 0.91).mean())
    fig = noise.plot_confidences({"task": (tiny_split, {"model": tiny_run.model})})
    assert any(line.get_xdata()[0] == pytest.approx(0.91) for line in fig.axes[0].lines)
    assert legend_is_outside(fig.axes[0])


def test_shuffled_labels_keep_label_counts_and_other_splits(tiny_split):
    shuffled = noise.shuffled_labels(tiny_split, seed=1)
    assert torch.equal(shuffled.y_train.sort().values, tiny_split.y_train.sort().values)
    assert not torch.equal(shuffled.y_train, tiny_split.y_train)
    assert torch.equal(shuffled.y_test, tiny_split.y_test)


def test_stop_at_train_accuracy():
    callback = noise.StopAtTrainAccuracy(0.9)
    history = train.History(train_acc=[0.5])
    assert not callback.on_epoch_end(None, history)
    history.train_acc.append(0.95)
    assert callback.on_epoch_end(None, history)


def test_memorisation_runs_and_figure():
    runs = noise.memorisation_runs(width=8, max_epochs=2)
    assert set(runs) == {"true labels", "random labels"} and runs["true labels"]["epochs"] <= 2
    assert legend_is_outside(noise.plot_memorisation(runs).axes[0])


# --------------------------------------------------------------------------- exercise: inverted dropout
def _good_dropout(x, p, training):
    if not training:
        return x
    return x * (torch.rand_like(x) >= p).to(x.dtype) / (1 - p)


def _stub(x, p, training):
    raise NotImplementedError


def _fixed_mask(x, p):
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) >= p
    return x * mask.to(x.dtype) / (1 - p)


@pytest.mark.parametrize("fn, verdict", [
    (_good_dropout, "Correct"), (_stub, "Not attempted"), (None, "Not attempted"),
    (lambda x, p, training: x * (torch.rand_like(x) >= p).to(x.dtype) if training else x, "1/(1-p)"),
    (lambda x, p, training: _good_dropout(x, p, True), "eval mode"),
    (lambda x, p, training: x[:10], "same shape"),
    (lambda x, p, training: 1 / 0, "ZeroDivisionError"),
    (lambda x, p, training: _good_dropout(x, 0.5, training), "share p = 0.3"),
    (lambda x, p, training: _fixed_mask(x, p) if training else x, "fresh random mask"),
])
def test_check_inverted_dropout_never_raises(fn, verdict, capsys):
    assert noise.check_inverted_dropout(fn) is (verdict == "Correct")
    assert verdict in capsys.readouterr().out
    plt.close("all")
