import pytest
import torch

from helpers import data, models, train


@pytest.fixture(scope="module")
def spirals():
    return data.spirals(n=400, noise=0.1, device="cpu")


def test_fit_learns_spirals_and_records_history(spirals):
    torch.manual_seed(0)
    net = models.mlp(2, 2, width=32, depth=2)
    history = train.fit(net, spirals, epochs=40, lr=1e-2, batch_size=64, progress=False, seed=0)
    assert len(history.epoch) == 41 and history.epoch[0] == 0 and history.epoch[-1] == 40
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.train_loss[0] == pytest.approx(train.evaluate(models.mlp(2, 2, width=32, depth=2), spirals.x_train,
                                                                   spirals.y_train)[0], abs=0.5)
    assert history.val_acc[-1] > 0.85
    assert history.best("val_loss") == min(history.val_loss)
    assert set(history.final()) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "gap"}
    assert history.restored() == history.final() and history.at(0)["epoch"] == 0
    with pytest.raises(ValueError, match="epoch must be one of the logged epochs"):
        history.at(41)


def test_fit_is_reproducible_with_a_seed(spirals):
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(train.fit(models.mlp(2, 2, width=8), spirals, epochs=3, progress=False, seed=5).val_loss)
    assert runs[0] == runs[1]


def test_early_stopping_stops_and_restores_best(spirals):
    torch.manual_seed(0)
    net = models.mlp(2, 2, width=8)
    stopper = train.EarlyStopping(monitor="val_loss", patience=2)
    history = train.fit(net, spirals, epochs=200, lr=5.0, optimizer="sgd", callbacks=[stopper], progress=False)
    assert history.stopped_epoch is not None and history.stopped_epoch < 200
    assert history.best_epoch == stopper.best_epoch == history.restored_epoch
    val_loss, _ = train.evaluate(net, spirals.x_val, spirals.y_val)
    assert val_loss == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)
    assert history.restored()["val_loss"] == pytest.approx(val_loss, rel=1e-5)


def test_gradient_stats_callback(spirals):
    net = models.mlp(2, 2, width=8, depth=2)
    history = train.fit(net, spirals, epochs=2, batch_size=100, callbacks=[train.GradientStats()], progress=False)
    norms = history.extra["grad_norm"]
    assert set(norms) == {n for n, _ in net.named_parameters()}
    assert all(len(v) == 6 for v in norms.values())  # 3 batches x 2 epochs


def test_evaluate_restores_training_mode(spirals):
    net = models.mlp(2, 2, width=8, dropout=0.5)
    net.train()
    loss, acc = train.evaluate(net, spirals.x_val, spirals.y_val)
    assert net.training and 0 <= acc <= 1 and loss > 0
    assert train.predict_logits(net, spirals.x_val).shape == (len(spirals.y_val), 2)


def test_fit_reports_progress_after_each_epoch(spirals):
    fractions = []
    train.fit(models.mlp(2, 2, width=4), spirals, epochs=4, progress=fractions.append)
    assert fractions == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_weight_decay_skips_biases_and_norm_gains():
    net = models.mlp(2, 2, width=4, depth=2, norm="layer")
    opt = train.make_optimizer("adamw", net, 0.1, weight_decay=0.5)
    decayed, kept = opt.param_groups
    assert decayed["weight_decay"] == 0.5 and all(p.dim() == 2 for p in decayed["params"])
    assert kept["weight_decay"] == 0.0 and all(p.dim() == 1 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(net.parameters()))


def test_make_optimizer_names_match_torch_hyperparameters():
    params = list(models.mlp(2, 2, width=4).parameters())
    nesterov = train.make_optimizer("nesterov", params, 0.1, momentum=0.8)
    assert nesterov.defaults["nesterov"] and nesterov.defaults["momentum"] == 0.8
    assert train.make_optimizer("sgd", params, 0.1).defaults["momentum"] == 0.0
    assert train.make_optimizer("adam", params, 0.1, momentum=0.5, beta2=0.9).defaults["betas"] == (0.5, 0.9)
    assert train.make_optimizer("rmsprop", params, 0.1, beta2=0.9).defaults["alpha"] == 0.9


def test_make_optimizer_and_bad_arguments(spirals):
    params = models.mlp(2, 2, width=4).parameters()
    assert isinstance(train.make_optimizer("momentum", params, 0.1), torch.optim.SGD)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train.make_optimizer("lion", params, 0.1)
    with pytest.raises(ValueError, match=r"lr must be a number in \(0.0, 100.0\]"):
        train.make_optimizer("adam", params, -1.0)
    with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, 100000\]"):
        train.fit(models.mlp(2, 2), spirals, epochs=0)
    with pytest.raises(ValueError, match="patience must be an integer"):
        train.EarlyStopping(patience=0)


def test_sampled_steps_trains_on_seeded_batches_and_stops_when_asked():
    split = data.spirals(200, seed=0)

    def run(stop_at: int) -> tuple[list[int], torch.Tensor]:
        torch.manual_seed(0)
        model = models.mlp(2, 2, width=16, depth=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        seen: list[int] = []
        train.sampled_steps(model, optimizer, split, steps=20, batch_size=8, generator=torch.Generator().manual_seed(3),
                            progress=None, after_step=lambda done: seen.append(done) or done == stop_at)
        return seen, torch.cat([p.detach().flatten() for p in model.parameters()])

    every, weights = run(stop_at=0)
    early, early_weights = run(stop_at=5)
    assert every == list(range(1, 21)) and early == [1, 2, 3, 4, 5]
    assert torch.equal(run(stop_at=0)[1], weights)           # the generator fixes the batches
    assert not torch.equal(early_weights, weights)
