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
    assert len(history.epoch) == 40 and history.epoch[-1] == 40
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_acc[-1] > 0.85
    assert history.best("val_loss") == min(history.val_loss)
    assert set(history.final()) == {"train_loss", "train_acc", "val_loss", "val_acc", "gap"}


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
    assert history.best_epoch == stopper.best_epoch
    val_loss, _ = train.evaluate(net, spirals.x_val, spirals.y_val)
    assert val_loss == pytest.approx(history.val_loss[history.best_epoch - 1], rel=1e-5)


def test_gradient_stats_callback(spirals):
    net = models.mlp(2, 2, width=8, depth=2)
    history = train.fit(net, spirals, epochs=2, batch_size=100, callbacks=[train.GradientStats()], progress=False)
    norms = history.extra["grad_norm"]
    assert set(norms) == {n for n, _ in net.named_parameters()}
    assert all(len(v) == 6 for v in norms.values())


def test_evaluate_restores_training_mode(spirals):
    net = models.mlp(2, 2, width=8, dropout=0.5)
    net.train()
    loss, acc = train.evaluate(net, spirals.x_val, spirals.y_val)
    assert net.training and 0 <= acc <= 1 and loss > 0
    assert train.predict_logits(net, spirals.x_val).shape == (len(spirals.y_val), 2)


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
