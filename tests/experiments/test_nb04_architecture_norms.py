"""Notebook 04, section 5: exact normalization checks, batch-size runs, the explorer and the LayerNorm checker."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import data
from helpers.experiments import nb04_architecture_norms as norms


@pytest.fixture(scope="module")
def split():
    return data.mnist1d(n_train=200, seed=0, device="cpu")


def test_companion_effects():
    assert norms.companion_effect("layer") == 0.0
    assert norms.companion_effect("batch", training=True) > 0.1
    assert norms.companion_effect("batch", training=False) == 0.0
    with pytest.raises(ValueError, match="norm"):
        norms.companion_effect("none")


def test_batch_of_one_and_two():
    assert "Expected more than 1 value per channel" in norms.batch_of_one_error()
    two = norms.batch_of_two()
    assert two["largest |y0 + y1|"] < 1e-12 and two["median |y|"] > 0.99 and two["smallest |y|"] <= two["median |y|"]


def test_build_places_the_norm_in_every_hidden_block_but_the_first():
    model = norms.build("batch")
    assert isinstance(model.blocks[0].norm, nn.Identity)
    assert all(isinstance(block.norm, nn.BatchNorm1d) for block in model.blocks[1:])
    assert isinstance(norms.build("layer").blocks[2].norm, nn.LayerNorm)
    with pytest.raises(ValueError, match="norm"):
        norms.build("group")


def test_train_mode_agreement_is_one_without_batch_statistics_and_leaves_the_model_alone(split):
    model = norms.build("layer").eval()
    assert norms.train_mode_agreement(model, split.x_test, 4) == 1.0
    batch_model = norms.build("batch")
    batch_model.blocks[1].norm.running_mean.fill_(5.0)
    before = batch_model.blocks[1].norm.running_mean.clone()
    assert norms.train_mode_agreement(batch_model, split.x_test, 2) < 1.0
    assert torch.equal(batch_model.blocks[1].norm.running_mean, before) and not batch_model.training


def test_training_runs_record_accuracy_and_agreement_for_batchnorm_only(split):
    seen = []
    run = norms.train("batch", split, 4, 20, progress=seen.append)
    assert 0 <= run.test_acc <= 1 and 0 <= run.train_eval_agreement <= 1 and run.batch_size == 4
    assert 0 <= run.train_mode_acc <= 1 and 0 <= run.sorted_train_mode_acc <= 1 and run.steps == 20
    assert norms.train("layer", split, 4, 5).train_eval_agreement is None
    assert len(seen) == 20 and seen[-1] == 1.0


def test_train_mode_accuracy_sees_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(1), nn.Linear(1, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model[1].bias.zero_()
    x = torch.cat([torch.full((4, 1), -1.0), torch.full((4, 1), 1.0)])   # class 0 below zero, class 1 above
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    model.eval()                                        # running mean 0, variance 1: the sign decides
    assert (model(x).argmax(-1) == y).all()
    mixed = x[[0, 4, 1, 5, 2, 6, 3, 7]], y[[0, 4, 1, 5, 2, 6, 3, 7]]
    assert norms.train_mode_accuracy(model, *mixed, batch_size=2) == 1.0
    assert norms.train_mode_accuracy(model, *mixed, batch_size=2, sort_by_class=True) == 0.5  # one class a batch
    assert model.training is False


@pytest.mark.parametrize("kwargs, name", [({"batch_size": 1}, "batch_size"), ({"steps": 0}, "steps"),
                                          ({"lr": 0}, "lr"), ({"norm": "group"}, "norm")])
def test_training_arguments_are_checked(split, kwargs, name):
    arguments = {"norm": "batch", "split": split, "batch_size": 4, "steps": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        norms.train(**arguments)


def test_run_batches_and_plot(split):
    seen = []
    runs = norms.run_batches({2: 5, 8: 3}, split, progress=seen.append)
    assert set(runs) == {(n, b) for n in norms.NORMS for b in (2, 8)}
    assert seen[-1] == pytest.approx(1.0) and max(b - a for a, b in zip([0.0, *seen], seen)) <= 0.1
    fig = norms.plot_batches(runs)
    assert len(fig.axes) == 2 and all(ax.has_data() for ax in fig.axes)


def test_explorer(split):
    seen = []
    fig, numbers = norms.batch_explorer(batch_size=16, steps=10, split=split, progress=seen.append)
    assert fig.axes[0].has_data() and seen[-1] == pytest.approx(1.0)
    assert set(numbers) == {"no normalization test accuracy", "BatchNorm test accuracy", "LayerNorm test accuracy",
                            "BatchNorm: same prediction in train and eval mode",
                            "BatchNorm left in train mode: test accuracy, i.i.d. batches",
                            "BatchNorm left in train mode: test accuracy, class-sorted batches"}


@pytest.mark.parametrize("kwargs, name", [({"batch_size": 1}, "batch_size"), ({"batch_size": 257}, "batch_size"),
                                          ({"steps": 5}, "steps"), ({"steps": 1001}, "steps")])
def test_explorer_checks_its_controls(split, kwargs, name):
    with pytest.raises(ValueError, match=name):
        norms.batch_explorer(split=split, **kwargs)


def layer_norm(x, weight, bias):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight + bias


def test_layer_norm_checker_accepts_a_right_answer(capsys):
    assert norms.check_layer_norm(layer_norm)
    assert "Correct" in capsys.readouterr().out


def batch_axis(x, weight, bias):
    flat = x.reshape(-1, x.shape[-1])
    out = (flat - flat.mean(0)) / torch.sqrt(flat.var(0, unbiased=False) + 1e-5)
    return out.reshape(x.shape) * weight + bias


@pytest.mark.parametrize("answer, expected", [
    (batch_axis, "which is BatchNorm"),
    (lambda x, w, b: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True) * w + b, "biased"),
    (lambda x, w, b: x.mean(-1), "same shape"),
    (lambda x, w, b: "no", "same shape"),
    (lambda x, w, b: x.nope, "raised AttributeError"),
])
def test_layer_norm_checker_explains_wrong_answers_without_raising(answer, expected, capsys):
    assert norms.check_layer_norm(answer) is False
    assert expected in capsys.readouterr().out


def test_layer_norm_checker_reports_an_untouched_stub(capsys):
    def stub(x, weight, bias):
        raise NotImplementedError

    assert norms.check_layer_norm(stub) is False
    assert "Not attempted" in capsys.readouterr().out
