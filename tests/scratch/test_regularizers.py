"""helpers.scratch.regularizers against PyTorch (nn.Dropout, F.cross_entropy's label smoothing, torch.roll,
BatchNorm's own batch statistics) and hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as functional

from helpers.scratch import regularizers


# --------------------------------------------------------------------------- inverted dropout
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inverted_dropout_has_the_statistics_of_nn_dropout(p):
    x = torch.ones(200_000)
    torch.manual_seed(0)
    ours = regularizers.inverted_dropout(x, p, generator=torch.Generator().manual_seed(1))
    theirs = nn.Dropout(p).train()(x)
    for out in (ours, theirs):
        assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.005)
        assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / (1 - p)))
        assert out.mean().item() == pytest.approx(1.0, abs=0.02)


def test_inverted_dropout_is_exactly_a_kept_mask_over_the_keep_probability():
    x = torch.randn(6, 7)
    out = regularizers.inverted_dropout(x, 0.3, generator=torch.Generator().manual_seed(5))
    draws = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, x * (draws < 0.7).float() / 0.7)


def test_inverted_dropout_multiplies_the_variance_of_zero_mean_units_by_one_over_keep():
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(0))
    ours = regularizers.inverted_dropout(x, 0.5, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    theirs = nn.Dropout(0.5).train()(x)
    assert (ours.var() / x.var()).item() == pytest.approx(2.0, rel=0.02)
    assert (ours.var() / theirs.var()).item() == pytest.approx(1.0, rel=0.02)


def test_inverted_dropout_is_the_identity_in_eval_mode_and_at_zero_rate():
    x = torch.randn(50)
    assert regularizers.inverted_dropout(x, 0.5, training=False) is x
    assert regularizers.inverted_dropout(x, 0.0) is x


def test_inverted_dropout_draws_a_fresh_mask_per_generator_state():
    x = torch.ones(1000)
    generator = torch.Generator().manual_seed(0)
    first = regularizers.inverted_dropout(x, 0.5, generator=generator)
    second = regularizers.inverted_dropout(x, 0.5, generator=generator)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_inverted_dropout_rejects_rates_outside_zero_to_one(p):
    with pytest.raises(ValueError, match=r"p must be a number in \[0.0, 1.0\)"):
        regularizers.inverted_dropout(torch.ones(3), p)


# --------------------------------------------------------------------------- label smoothing
def test_smoothed_targets_by_hand():
    targets = regularizers.smoothed_targets(torch.tensor([0, 2]), 4, 0.2)
    expected = torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]])
    assert torch.allclose(targets, expected)
    assert targets.dtype == torch.float32
    binary = regularizers.smoothed_targets(torch.tensor([1]), 2, 0.2)
    assert torch.allclose(binary, torch.tensor([[0.1, 0.9]]))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3, 1.0])
def test_smoothed_cross_entropy_matches_torch(smoothing):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(64, 10, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    ours = regularizers.smoothed_cross_entropy(logits, labels, smoothing)
    theirs = functional.cross_entropy(logits, labels, label_smoothing=smoothing)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_smoothed_cross_entropy_has_the_gradient_of_torch():
    logits = torch.randn(8, 5, requires_grad=True)
    labels = torch.arange(8) % 5
    regularizers.smoothed_cross_entropy(logits, labels, 0.2).backward()
    ours = logits.grad.clone()
    logits.grad = None
    functional.cross_entropy(logits, labels, label_smoothing=0.2).backward()
    assert torch.allclose(ours, logits.grad, atol=1e-6)


def test_smoothing_cap_is_where_the_smoothed_loss_is_minimal():
    assert regularizers.smoothing_cap(0.1, 10) == pytest.approx(0.91)
    assert regularizers.smoothing_cap(0.0, 3) == 1.0
    cap = regularizers.smoothing_cap(0.1, 10)
    at_cap = torch.full((1, 10), (1 - cap) / 9).index_fill(1, torch.tensor([3]), cap).log().requires_grad_()
    regularizers.smoothed_cross_entropy(at_cap, torch.tensor([3]), 0.1).backward()
    assert at_cap.grad.abs().max().item() < 1e-6          # the gradient p - t vanishes at the cap
    sharper = (at_cap.detach() * 2).requires_grad_()
    regularizers.smoothed_cross_entropy(sharper, torch.tensor([3]), 0.1).backward()
    assert sharper.grad[0, 3].item() > 1e-3                # beyond the cap the loss pushes the logit back


def test_smoothing_cap_accepts_the_edges_of_its_ranges():
    assert regularizers.smoothing_cap(1.0, 2) == pytest.approx(0.5)
    assert regularizers.smoothing_cap(0.5, 1_000_000) == pytest.approx(0.5 + 0.5e-6)
    with pytest.raises(ValueError, match="smoothing must be"):
        regularizers.smoothing_cap(1.5, 10)
    with pytest.raises(ValueError, match="n_classes must be"):
        regularizers.smoothing_cap(0.1, 1_000_001)


def test_label_smoothing_validation():
    with pytest.raises(ValueError, match="labels must have shape"):
        regularizers.smoothed_targets(torch.zeros(2, 2, dtype=torch.long), 3, 0.1)
    with pytest.raises(ValueError, match="smoothing must be"):
        regularizers.smoothed_targets(torch.tensor([0]), 3, 1.5)
    with pytest.raises(ValueError, match="n_classes must be"):
        regularizers.smoothed_targets(torch.tensor([0]), 1, 0.1)
    with pytest.raises(ValueError, match="n_classes must be"):
        regularizers.smoothed_targets(torch.tensor([0]), 1_000_001, 0.1)
    with pytest.raises(ValueError, match="logits must be"):
        regularizers.smoothed_cross_entropy(torch.zeros(3), torch.tensor([0, 1, 2]), 0.1)
    with pytest.raises(ValueError, match="labels"):
        regularizers.smoothed_cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1]), 0.1)
    with pytest.raises(ValueError, match="n_classes must be"):
        regularizers.smoothing_cap(0.1, 1)
    with pytest.raises(ValueError, match="smoothing must be"):
        regularizers.smoothing_cap(-0.1, 10)


# --------------------------------------------------------------------------- mixup
def _mix(n=2000, alpha=0.4, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n, 3)
    targets = torch.eye(n)                    # example i is class i, so each blend can be read back
    mixed_x, mixed_targets = regularizers.mixup(x, targets, alpha)
    partner = torch.where(mixed_targets.diag() < 1, (mixed_targets - torch.diag(mixed_targets.diag())).argmax(1),
                          torch.arange(n))
    return x, mixed_x, mixed_targets, mixed_targets.diag(), partner


def test_mixup_blends_inputs_and_targets_with_one_weight_and_one_partner_per_example():
    x, mixed_x, mixed_targets, lam, partner = _mix()
    assert torch.allclose(mixed_targets.sum(1), torch.ones(len(x)))
    assert torch.equal(torch.bincount(partner, minlength=len(x)), torch.ones(len(x), dtype=torch.long))
    assert torch.allclose(mixed_x, lam[:, None] * x + (1 - lam[:, None]) * x[partner], atol=1e-5)


@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_mixup_weights_follow_a_symmetric_beta(alpha):
    *_, lam, partner = _mix(alpha=alpha)
    lam = lam[partner != torch.arange(len(lam))]
    assert lam.mean().item() == pytest.approx(0.5, abs=0.03)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.12)


def test_mixup_keeps_the_shape_of_signals_with_channels():
    torch.manual_seed(0)
    x = torch.randn(5, 1, 40)
    mixed_x, mixed_targets = regularizers.mixup(x, functional.one_hot(torch.arange(5), 5).float(), 1.0)
    assert mixed_x.shape == x.shape and mixed_targets.shape == (5, 5)


def test_mixup_accepts_alpha_up_to_one_hundred():
    torch.manual_seed(0)
    mixed_x, _ = regularizers.mixup(torch.randn(4, 2), torch.eye(4), 100.0)
    assert mixed_x.shape == (4, 2)
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0.0, 100.0\]"):
        regularizers.mixup(torch.randn(4, 2), torch.eye(4), 100.5)


def test_mixup_validation():
    with pytest.raises(ValueError, match="alpha must be"):
        regularizers.mixup(torch.zeros(2, 3), torch.eye(2), 0.0)
    with pytest.raises(ValueError, match=r"targets must have shape \(2, classes\)"):
        regularizers.mixup(torch.zeros(2, 3), torch.zeros(3, 2), 1.0)
    with pytest.raises(ValueError, match="targets must have shape"):
        regularizers.mixup(torch.zeros(2, 3), torch.zeros(2), 1.0)


# --------------------------------------------------------------------------- random shifts
def test_random_shift_rolls_each_row_like_torch_roll():
    x = torch.randn(30, 12)
    out = regularizers.random_shift(x, 4, torch.Generator().manual_seed(7))
    shifts = torch.randint(-4, 5, (30, 1), generator=torch.Generator().manual_seed(7))
    for row, shift in enumerate(shifts.flatten().tolist()):
        assert torch.equal(out[row], torch.roll(x[row], shift))


def test_random_shift_uses_every_offset_from_minus_to_plus_max_shift():
    x = torch.arange(10.0).repeat(2000, 1)
    out = regularizers.random_shift(x, 3, torch.Generator().manual_seed(0))
    shift = (-out[:, 0]).long() % 10                     # out[i, 0] = x[i, -s mod 10] = -s mod 10
    signed = torch.where(shift > 5, shift - 10, shift)
    assert set(signed.tolist()) == {-3, -2, -1, 0, 1, 2, 3}
    assert torch.equal(regularizers.random_shift(x, 0), x)


def test_random_shift_validation():
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[0, 9\]"):
        regularizers.random_shift(torch.zeros(2, 10), 10)
    with pytest.raises(ValueError, match="x must have shape"):
        regularizers.random_shift(torch.zeros(10), 1)


# --------------------------------------------------------------------------- BatchNorm re-estimation
def _dropout_then_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model.train()
    for _ in range(20):                       # running statistics learned with dropout on
        model(torch.randn(32, 5))
    return model


def test_reestimate_batchnorm_gives_the_statistics_of_the_dropout_free_inputs():
    model = _dropout_then_batchnorm()
    x = torch.randn(300, 5)
    inflated = model[2].running_var.clone()
    regularizers.reestimate_batchnorm(model, x)
    with torch.no_grad():
        clean = model[0](x)                   # what BatchNorm sees in eval mode
    assert torch.allclose(model[2].running_mean, clean.mean(0), atol=1e-5)
    assert torch.allclose(model[2].running_var, clean.var(0), atol=1e-5)
    assert (model[2].running_var < inflated).all()
    assert not model.training and not model[2].training and model[2].momentum == 0.1


def test_reestimate_batchnorm_averages_over_batches():
    model = _dropout_then_batchnorm()
    x = torch.randn(300, 5)
    regularizers.reestimate_batchnorm(model, x, batch_size=100)
    with torch.no_grad():
        clean = model[0](x)
    assert torch.allclose(model[2].running_mean, clean.mean(0), atol=1e-5)
    assert model[2].num_batches_tracked.item() == 3


def test_reestimate_batchnorm_standardises_what_evaluation_sees():
    model = _dropout_then_batchnorm()
    x = torch.randn(1000, 5)
    regularizers.reestimate_batchnorm(model, x)
    with torch.no_grad():
        normalised = model[2](model[0](x))
    assert normalised.mean(0).abs().max().item() < 1e-4
    assert normalised.var(0).sub(1).abs().max().item() < 0.01


def test_reestimate_batchnorm_validation():
    with pytest.raises(ValueError, match="BatchNorm"):
        regularizers.reestimate_batchnorm(nn.Linear(3, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="batch_size"):
        regularizers.reestimate_batchnorm(_dropout_then_batchnorm(), torch.zeros(4, 5), batch_size=0)


def test_variance_shift_is_what_the_fix_removes():
    model = _dropout_then_batchnorm()
    x = torch.randn(2000, 5)
    model.train()
    for _ in range(200):
        model(x)
    model.eval()
    with torch.no_grad():
        clean = model[0](x)
    before = (clean.var(0) / model[2].running_var).mean().item()
    regularizers.reestimate_batchnorm(model, x)
    after = (clean.var(0) / model[2].running_var).mean().item()
    assert before < 0.75 and after == pytest.approx(1.0, abs=1e-4)
    assert math.isfinite(before)


# --------------------------------------------------------------------------- devices
def test_random_tensors_follow_the_input_to_its_device():
    """On the meta device (shapes only) any tensor left on the CPU breaks the arithmetic, as it would on a GPU."""
    x = torch.zeros(3, 10, device="meta")
    assert regularizers.random_shift(x, 2).device.type == "meta"
    assert regularizers.inverted_dropout(x, 0.5).device.type == "meta"
    mixed_x, mixed_targets = regularizers.mixup(x, torch.zeros(3, 4, device="meta"), 0.4)
    assert mixed_x.device.type == mixed_targets.device.type == "meta"
