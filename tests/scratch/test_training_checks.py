"""The decisive checks, each against a hand-computed value or an independent reference."""
import math
from dataclasses import replace

import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from tiny_pipelines import no_zero_grad, tiny
from torch import nn
from torch.nn import functional

from helpers.scratch import training_checks as checks
from helpers.scratch.pipeline import Pipeline


def no_train_call(model, optimizer, loss_fn, x, y):
    optimizer.zero_grad()
    loss = loss_fn(model(x), x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def test_nearest_neighbour_agreement_matches_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 3, generator=generator), torch.randint(0, 3, (60,), generator=generator)
    _, index = NearestNeighbors(n_neighbors=2).fit(x.numpy()).kneighbors(x[:25].numpy())
    expected = (y[torch.as_tensor(index[:, 1])] == y[:25]).float().mean().item()
    assert checks.nearest_neighbour_agreement(x, y, limit=25) == pytest.approx(expected)
    pairs = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    assert checks.nearest_neighbour_agreement(pairs, torch.tensor([0, 0, 1, 1])) == 1
    assert checks.nearest_neighbour_agreement(pairs, torch.tensor([0, 1, 1, 1])) == 0.5
    with pytest.raises(ValueError, match=r"^limit must"):
        checks.nearest_neighbour_agreement(x, y, limit=0)


def test_majority_share():
    assert checks.majority_share(torch.tensor([2, 2, 1, 2, 0])) == pytest.approx(0.6)


def test_loss_at_init_is_the_pipelines_loss_of_a_fresh_model():
    p = tiny()
    x, y = p.batch(64)
    model = p.fresh_model().train()
    with torch.no_grad():
        expected = functional.cross_entropy(model(x), y).item()
    torch.manual_seed(123)                        # dropout masks differ between the two calls
    assert checks.loss_at_init(p, x, y) == pytest.approx(expected, rel=0.1)
    assert checks.loss_at_init(p, x, y) == pytest.approx(math.log(3), rel=0.2)


def test_confident_loss_is_zero_for_logits_and_ln_one_plus_c_minus_one_over_e_after_a_softmax():
    p = tiny()
    x, y = p.batch(16)
    assert checks.confident_loss(p, x, y) == pytest.approx(math.log(1 + 2 * math.exp(-30)), abs=1e-9)
    softmaxed = replace(p, loss=lambda out, x_, y_: functional.cross_entropy(out.softmax(-1), y_))
    assert checks.confident_loss(softmaxed, x, y) == pytest.approx(math.log(1 + 2 / math.e), rel=1e-5)
    assert checks.confident_loss(softmaxed, x, y, margin=2.0) > checks.confident_loss(softmaxed, x, y)
    with pytest.raises(ValueError, match=r"^margin must"):
        checks.confident_loss(p, x, y, margin=0.5)


def test_weight_spread_is_the_ratio_of_class_weights():
    p = tiny()
    x, y = p.data.x_train, p.data.y_train
    assert checks.weight_spread(p, x, y) == pytest.approx(1.0)
    weights = torch.tensor([1.0, 1.0, 5.0])
    weighted = replace(p, loss=lambda out, x_, y_: functional.cross_entropy(out, y_, weight=weights))
    assert checks.weight_spread(weighted, x, y) == pytest.approx(5.0)
    one_heavy = torch.tensor([1.0, 4.0, 4.0])      # the median example now carries weight 4
    weighted = replace(p, loss=lambda out, x_, y_: functional.cross_entropy(out, y_, weight=one_heavy))
    assert checks.weight_spread(weighted, x, y) == pytest.approx(1.0)


def test_a_repeated_step_at_learning_rate_zero_doubles_the_gradient_only_without_zero_grad():
    p = tiny()
    x, y = p.batch(32)
    assert checks.step_gradient_ratio(p, x, y) == pytest.approx(1.0, abs=1e-6)
    assert checks.step_gradient_ratio(replace(p, train_step=no_zero_grad), x, y) == pytest.approx(2.0, rel=1e-5)
    model = p.fresh_model()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), p.fresh_model().parameters()))


def test_repeated_step_counts_only_the_gradients_the_optimizer_uses():
    p = tiny(make_optimizer=lambda model: torch.optim.Adam(model.head.parameters(), lr=1e-3))
    x, y = p.batch(32)
    assert checks.step_gradient_ratio(p, x, y) == pytest.approx(1.0, abs=1e-6)


def test_parameters_without_gradient_finds_a_detached_layer_and_skips_frozen_ones():
    p = tiny()
    x, y = p.batch(32)
    assert checks.parameters_without_gradient(p, x, y) == []

    def detached():
        model = p.build_model()
        layer = model.blocks[0].linear
        model.blocks[0].linear = nn.Sequential(layer)
        model.blocks[0].linear.register_forward_hook(lambda module, inputs, out: out.detach())
        return model

    assert checks.parameters_without_gradient(replace(p, build_model=detached), x, y) == [
        "blocks.0.linear.0.weight", "blocks.0.linear.0.bias"]

    def frozen():
        model = p.build_model()
        model.blocks[0].requires_grad_(False)
        return model

    assert checks.parameters_without_gradient(replace(p, build_model=frozen), x, y) == []


class MeanMixer(nn.Module):
    """Adds the batch mean to every example: each output depends on the whole batch."""

    def forward(self, x):
        return x + x.mean(0, keepdim=True)


def test_batch_leak_is_zero_for_independent_examples_and_exact_for_a_mean_mixer():
    x = torch.randn(4, 3)
    assert checks.batch_leak(nn.Linear(3, 2), x) == 0.0
    # d out_0 . v / d x_j = v / 4 for j != 0 and v (1 + 1/4) for j = 0
    others, own = math.sqrt(3) / 4, 1.25
    assert checks.batch_leak(MeanMixer(), x, index=0) == pytest.approx(others / math.sqrt(others ** 2 + own ** 2))
    with pytest.raises(ValueError, match=r"^index must"):
        checks.batch_leak(MeanMixer(), x, index=4)


def test_batch_leak_probes_token_models_at_their_embedding():
    model = nn.Sequential(nn.Embedding(5, 3), MeanMixer())
    tokens = torch.tensor([[1, 2], [3, 4], [0, 1]])
    assert checks.batch_leak(model, tokens) > 0.1
    assert checks.batch_leak(nn.Embedding(5, 3), tokens) == 0.0


def test_batch_leak_is_zero_when_nothing_upstream_takes_a_gradient():
    class Cut(nn.Module):
        def forward(self, x):
            return x.detach()

    assert checks.batch_leak(nn.Sequential(Cut(), MeanMixer(), nn.Linear(2, 2)), torch.randn(3, 2)) == 0.0


def test_modes_during_training_sees_eval_mode_left_on():
    p = tiny()
    x, y = p.batch(32)
    assert checks.modes_during_training(p, x, y) == [True, True, True]            # two dropouts, one BatchNorm
    assert checks.modes_during_training(replace(p, train_step=no_train_call), x, y) == [False, False, False]
    linear = Pipeline("linear", p.data, lambda: nn.Linear(6, 3))
    assert checks.modes_during_training(linear, x, y) == []


def test_prediction_disagreement_is_zero_in_eval_mode_and_not_in_train_mode():
    p = tiny()
    model = p.fresh_model()
    assert checks.prediction_disagreement(p, model, p.data.x_val) == 0.0
    in_train_mode = replace(p, predict=lambda m, x: m.train()(x).detach())
    assert checks.prediction_disagreement(in_train_mode, model, p.data.x_val) > 0.01


def test_overfit_one_batch_returns_every_reported_loss_and_memorises():
    p = tiny()
    losses = checks.overfit_one_batch(p, *p.batch(16), steps=60)
    assert len(losses) == 60 and losses[-1] < 0.2 * losses[0]
    with pytest.raises(ValueError, match=r"^steps must"):
        checks.overfit_one_batch(p, *p.batch(16), steps=0)


def test_overfit_one_batch_predicts_once_before_training_as_a_loop_does():
    p = tiny()
    calls = []

    def record(model, x):
        calls.append(model.training)
        return model(x)

    checks.overfit_one_batch(replace(p, predict=record), *p.batch(16), steps=3)
    assert len(calls) == 1


def test_padding_change_is_zero_for_a_masked_loss_and_not_for_an_unmasked_one():
    pad = 0

    def masked(output, x, y):
        keep = (x != pad).flatten().float()
        per_token = functional.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="none")
        return (per_token * keep).sum() / keep.sum()

    def unmasked(output, x, y):
        return functional.cross_entropy(output.flatten(0, 1), y.flatten())

    model = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 3))
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    y = torch.tensor([[1, 2, 0, 0], [2, 1, 0, 0]])
    tagger = Pipeline("tagger", tiny().data, lambda: model, loss=masked, pad_id=pad)
    assert checks.padding_change(tagger, model, x, y) < 1e-6
    with torch.no_grad():
        base = unmasked(model(x), x, y)
        padded = torch.cat([x, torch.zeros(2, 3, dtype=torch.long)], 1)
        padded_y = torch.cat([y, torch.zeros(2, 3, dtype=torch.long)], 1)
        expected = (unmasked(model(padded), padded, padded_y) - base).abs()
    measured = checks.padding_change(replace(tagger, loss=unmasked), model, x, y, extra=3)
    assert measured == pytest.approx((expected / base).item(), rel=1e-5) and measured > 1e-3
    with pytest.raises(ValueError, match=r"^pipeline\.pad_id must"):
        checks.padding_change(replace(tagger, pad_id=None), model, x, y)
    with pytest.raises(ValueError, match=r"^extra must"):
        checks.padding_change(tagger, model, x, y, extra=0)


def test_class_recalls_by_hand():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0], [0, 2.0, 0]])
    labels = torch.tensor([0, 0, 0, 1])
    recalls = checks.class_recalls(logits, labels, 3)
    assert recalls[:2].tolist() == pytest.approx([2 / 3, 1.0]) and math.isnan(recalls[2])


def test_input_rms_and_standardized_mean_difference_by_hand():
    assert checks.input_rms(torch.tensor([[3.0, 4.0]])) == pytest.approx(math.sqrt(12.5))
    train = torch.tensor([[0.0, 0.0, 1.0], [2.0, 4.0, 1.0]])       # means (1, 2, 1), stds (1.41, 2.83, 0)
    val = torch.tensor([[1.0, 4.0, 1.0], [3.0, 6.0, 1.0]])         # means (2, 5, 1)
    differences = [1 / math.sqrt(2), 3 / math.sqrt(8), 0.0]
    assert checks.standardized_mean_difference(train, val) == pytest.approx(sorted(differences)[1], rel=1e-5)


def test_defaults_of_the_checks():
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(1500, 2, generator=generator), torch.randint(0, 2, (1500,), generator=generator)
    assert checks.nearest_neighbour_agreement(x, y) == checks.nearest_neighbour_agreement(x, y, limit=1000)
    assert checks.nearest_neighbour_agreement(x, y) != checks.nearest_neighbour_agreement(x, y, limit=1001)
    p = tiny()
    xb, yb = p.batch(8)
    largest_logit = replace(p, loss=lambda output, x_, y_: output.max())
    assert checks.confident_loss(largest_logit, xb, yb) == 30.0
    assert len(checks.overfit_one_batch(p, xb, yb)) == 100
    model = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 3))
    tokens = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])

    def unmasked(output, x_, y_):
        return functional.cross_entropy(output.flatten(0, 1), y_.flatten())

    tagger = Pipeline("tagger", p.data, lambda: model, loss=unmasked, pad_id=0)
    tags = tokens % 3
    assert checks.padding_change(tagger, model, tokens, tags) == checks.padding_change(tagger, model, tokens, tags,
                                                                                       extra=16)
    assert checks.padding_change(tagger, model, tokens, tags) != checks.padding_change(tagger, model, tokens, tags,
                                                                                       extra=15)
    mixer = MeanMixer()
    x4 = torch.randn(4, 3)
    assert checks.batch_leak(mixer, x4) == checks.batch_leak(mixer, x4, index=0)
    assert checks.MODE_DEPENDENT == (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d)


def test_standardized_mean_difference_floors_tiny_spreads():
    train = torch.tensor([[1.0], [1.0]])              # no spread at all: the floor 1e-3 applies
    assert checks.standardized_mean_difference(train, torch.tensor([[1.002]])) == pytest.approx(2.0, rel=1e-3)
