"""Notebook 04, section 3: symmetry checks, the patch transformer, scrambled inputs and the training grid."""
from __future__ import annotations

import pytest
import torch

from helpers import data
from helpers.experiments import nb04_architecture_bias as bias


@pytest.fixture(scope="module")
def split():
    return data.mnist1d(n_train=100, seed=0, device="cpu")


def test_symmetry_checks_are_exact_where_they_should_be():
    assert bias.shift_commutes_with_circular_convolution(shift=3) == 0.0
    assert bias.permutation_commutes_with_attention(False) < 1e-5
    assert bias.permutation_commutes_with_attention(True) > 0.05


def test_patch_transformer_shapes_and_checks():
    model = bias.PatchTransformer(length=40, patch=4, width=16, heads=2, depth=2)
    assert model(torch.randn(3, 40)).shape == (3, 10)
    assert len(model.blocks) == 2 and model.position.shape == (10, 16)
    with pytest.raises(ValueError, match="patch must divide"):
        bias.PatchTransformer(patch=3)
    with pytest.raises(ValueError, match="depth"):
        bias.PatchTransformer(depth=0)


def test_patch_transformer_uses_positions():
    torch.manual_seed(0)
    model = bias.PatchTransformer(width=16, heads=2).eval()
    x = torch.randn(2, 40)
    patches_reversed = x.reshape(2, 10, 4).flip(1).reshape(2, 40)
    assert not torch.allclose(model(x), model(patches_reversed))
    with torch.no_grad():
        model.position.zero_()
    torch.testing.assert_close(model(x), model(patches_reversed), rtol=0, atol=1e-5)  # a set without positions


def test_the_three_models_and_their_costs():
    sizes = {name: sum(p.numel() for p in bias.build(name).parameters()) for name in bias.ARCHITECTURES}
    assert 9_000 < sizes["CNN"] < 13_000 and 12_000 < sizes["transformer"] < 16_000 and sizes["MLP"] > 20_000
    assert bias.flops_per_example("MLP") == 2 * (40 * 128 + 128 * 128 + 128 * 10)
    assert bias.flops_per_example("CNN") > bias.flops_per_example("MLP")
    with pytest.raises(ValueError, match="architecture"):
        bias.build("rnn")


def test_scrambling_permutes_every_split_the_same_way(split):
    mixed = bias.scrambled(split, seed=1)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    for name in ("x_train", "x_val", "x_test"):
        assert torch.equal(getattr(mixed, name), getattr(split, name)[:, order])
    assert torch.equal(mixed.y_test, split.y_test)
    assert not torch.equal(mixed.x_train, split.x_train)


def test_training_learns_reproducibly_and_reports_progress(split):
    seen = []
    run = bias.train("MLP", split, 30, seed=2, progress=seen.append)
    again = bias.train("MLP", split, 30, seed=2)
    assert run.test_acc == again.test_acc > 0.15 and run.n_train == 100 and not run.scrambled
    assert len(seen) == 30 and seen[-1] == 1.0
    assert bias.train("CNN", split, 2, scramble=True).scrambled


@pytest.mark.parametrize("kwargs, name", [({"steps": 0}, "steps"), ({"lr": 0}, "lr"), ({"batch_size": 0}, "batch_size"),
                                          ({"architecture": "rnn"}, "architecture")])
def test_training_arguments_are_checked(split, kwargs, name):
    arguments = {"architecture": "MLP", "split": split, "steps": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        bias.train(**arguments)


def test_grid_trains_each_job_once_and_plots_all_of_them():
    runs = bias.run_grid([("MLP", 100, False), ("MLP", 100, True), ("CNN", 200, False)], steps=3, seed=0)
    assert set(runs) == {("MLP", 100, False), ("MLP", 100, True), ("CNN", 200, False)}
    assert runs[("CNN", 200, False)].n_train == 200
    fig = bias.plot_grid(runs)
    assert len(fig.axes[0].patches) == 3
