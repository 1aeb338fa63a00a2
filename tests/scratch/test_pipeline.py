"""The pipeline and its training loop: the healthy parts, the records the checks read."""
import math

import pytest
import torch
from tiny_pipelines import blobs, tiny
from torch import nn
from torch.nn import functional

from helpers.scratch import pipeline
from helpers.scratch.pipeline import Pipeline


def test_cross_entropy_ignores_the_inputs_and_matches_torch():
    logits, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    assert pipeline.cross_entropy(logits, torch.full((5, 4), math.nan), y) == functional.cross_entropy(logits, y)


def test_adam_covers_every_parameter_at_the_given_rate():
    model = nn.Linear(3, 2)
    optimizer = pipeline.adam(model, lr=0.5)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert pipeline.adam(model).param_groups[0]["lr"] == 2e-3
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_train_step_clears_old_gradients_trains_in_train_mode_and_updates():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)                 # stale gradients must not leak into the step
    before = model[0].weight.detach().clone()
    torch.manual_seed(0)
    loss = pipeline.train_step(model, optimizer, pipeline.cross_entropy, x, y)
    assert model.training and not loss.requires_grad
    reference = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    reference.load_state_dict({"0.weight": before, "0.bias": model[0].bias.detach() + 0.1 * model[0].bias.grad})
    torch.manual_seed(0)
    expected = functional.cross_entropy(reference(x), y)
    expected.backward()
    assert torch.allclose(loss, expected.detach())
    assert torch.allclose(model[0].weight.grad, reference[0].weight.grad)
    assert torch.allclose(model[0].weight, before - 0.1 * reference[0].weight.grad)


def test_predict_is_in_eval_mode_and_builds_no_graph():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.9))
    x = torch.randn(8, 3)
    first, second = pipeline.predict(model, x), pipeline.predict(model, x)
    assert not model.training and not first.requires_grad and torch.equal(first, second)


def test_fresh_models_repeat_for_a_seed_and_differ_across_seeds():
    a, b, c = tiny().fresh_model(), tiny().fresh_model(), tiny(seed=1).fresh_model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_batch_and_step_use_the_pipelines_data_and_loss():
    calls = []

    def loss(output, x, y):
        calls.append((x.shape, y.shape))
        return functional.cross_entropy(output, y)

    p = tiny(loss=loss)
    x, y = p.batch(7, offset=3)
    assert torch.equal(x, p.data.x_train[3:10]) and torch.equal(y, p.data.y_train[3:10])
    model = p.fresh_model()
    p.step(model, p.make_optimizer(model), x, y)
    assert calls == [((7, 6), (7,))]


def test_classifier_builds_the_healthy_mlp():
    p = pipeline.classifier("blobs", blobs(), seed=3, width=8)
    model = p.fresh_model()
    assert p.seed == 3 and p.loss is pipeline.cross_entropy and p.train_step is pipeline.train_step
    assert model.blocks[0].linear.out_features == 8 and len(model.blocks) == 2
    assert isinstance(model.blocks[1].norm, nn.BatchNorm1d) and isinstance(model.blocks[0].drop, nn.Dropout)
    assert model.blocks[0].drop.p == 0.1
    with pytest.raises(ValueError, match=r"^width must"):
        pipeline.classifier("blobs", blobs(), width=0)


def test_gradient_norm_matches_torch_and_handles_no_gradients():
    model = nn.Linear(4, 3)
    assert pipeline.gradient_norm(model) == 0.0
    functional.cross_entropy(model(torch.randn(5, 4)), torch.tensor([0, 1, 2, 0, 1])).backward()
    expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    assert pipeline.gradient_norm(model) == pytest.approx(expected, rel=1e-6)
    assert pipeline.gradient_norm(model, [model.bias]) == pytest.approx(model.bias.grad.norm().item(), rel=1e-6)


def test_update_ratio_is_the_largest_relative_change_of_a_weight_matrix():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        model[0].weight[0, 0] += 0.5                          # |dW| / |W| = 0.5 / 5
        model[1].weight[0, 0] += 0.2                          # 0.2 / 1
    assert pipeline.update_ratio(before, model) == pytest.approx(0.2)
    assert pipeline.update_ratio({}, model) == 0.0


def test_train_records_each_step_and_each_evaluation():
    run = pipeline.train(tiny(), steps=30, evaluations=3)
    assert len(run.losses) == len(run.grad_norms) == len(run.update_ratios) == 30
    assert run.eval_steps == [0, 10, 20, 30] and len(run.val_acc) == len(run.val_loss) == 4
    assert set(run.moved_early) == {name for name, _ in run.model.named_parameters()} and all(run.moved_early.values())
    assert run.val_acc[-1] > 0.9 and run.val_loss[-1] < run.val_loss[0]
    assert all(0 < ratio < 1 for ratio in run.update_ratios)
    with pytest.raises(ValueError, match=r"^steps must"):
        pipeline.train(tiny(), steps=19)
    with pytest.raises(ValueError, match=r"^evaluations must"):
        pipeline.train(tiny(), steps=30, evaluations=31)


def test_train_draws_every_example_once_per_epoch():
    seen = []

    def step(model, optimizer, loss_fn, x, y):
        seen.append(x)
        return torch.tensor(0.0)

    pipeline.train(tiny(train_step=step, batch_size=50), steps=20, evaluations=1)
    first_epoch = torch.cat(seen[:4])
    assert first_epoch.shape == (200, 6)
    assert torch.allclose(first_epoch.sum(0), tiny().data.x_train.sum(0), atol=1e-4)
    assert not torch.equal(torch.cat(seen[:4]), torch.cat(seen[4:8]))


def test_train_notes_parameters_that_did_not_move():
    def head_only(model):
        return torch.optim.Adam(model.head.parameters(), lr=1e-2)

    run = pipeline.train(tiny(make_optimizer=head_only), steps=20, evaluations=1)
    assert run.moved_early == {name: name.startswith("head") for name in run.moved_early}


def test_metrics_count_only_the_masked_positions_of_sequences():
    data = blobs()
    p = Pipeline("masked", data, lambda: nn.Identity(), metric_mask=lambda x: x[:, :, 0] > 0)
    x = torch.tensor([[[1.0, 5.0, 0.0], [-1.0, 0.0, 9.0]]])        # (1, T=2, 3): the second position is masked out
    y = torch.tensor([[1, 0]])
    output, labels = pipeline.labelled_positions(p, x, x, y)
    assert torch.equal(output, x[0, :1]) and torch.equal(labels, torch.tensor([1]))
    loss, accuracy = pipeline.evaluate(p, nn.Identity(), x, y)
    assert accuracy == 1.0 and loss == pytest.approx(functional.cross_entropy(x[0, :1], labels).item())


def test_defaults_of_the_pipeline_and_the_loop():
    p = Pipeline("defaults", blobs(), lambda: nn.Linear(6, 3))
    assert (p.batch_size, p.seed, p.pad_id, p.metric_mask) == (128, 0, None, None)
    assert p.loss is pipeline.cross_entropy and p.make_optimizer is pipeline.adam and p.predict is pipeline.predict
    assert pipeline.EARLY_STEPS == 20
    assert pipeline.train(tiny(), steps=20).eval_steps == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert pipeline.classifier("blobs", blobs()).fresh_model().blocks[0].linear.out_features == 128
    x, y = tiny().batch(5)
    assert torch.equal(x, tiny().data.x_train[:5]) and torch.equal(y, tiny().data.y_train[:5])


def test_moved_early_is_read_after_exactly_twenty_steps():
    class LateStart(torch.optim.SGD):
        """Leaves the weights alone for the first ``wait`` steps."""

        def __init__(self, params, wait):
            super().__init__(params, lr=0.1)
            self.wait = wait

        def step(self, closure=None):
            self.wait -= 1
            return None if self.wait >= 0 else super().step(closure)

    late = pipeline.train(tiny(make_optimizer=lambda model: LateStart(model.parameters(), 20)), 30, 1)
    assert not any(late.moved_early.values())
    early = pipeline.train(tiny(make_optimizer=lambda model: LateStart(model.parameters(), 19)), 30, 1)
    assert all(early.moved_early.values())
