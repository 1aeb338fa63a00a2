"""Notebook 01, section 6: gradient growth through time, clipping (single and swept), gating."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers.data import remember_first
from helpers.experiments import nb01_backpropagation_rnn as lab


def test_orthogonal_matrix_is_orthogonal():
    q = lab.orthogonal(8, seed=2)
    torch.testing.assert_close(q @ q.T, torch.eye(8, dtype=torch.float64))


def test_linear_rnn_gradient_growth_is_exactly_s_to_the_t():
    assert lab.rnn_gradient_growth(1.2, 15) == pytest.approx(15 * math.log(1.2), abs=1e-9)
    assert lab.rnn_gradient_growth(0.8, 10) == pytest.approx(10 * math.log(0.8), abs=1e-9)
    assert lab.rnn_gradient_growth(1.5, 30, "tanh") < 30 * math.log(1.5)
    with pytest.raises(ValueError, match="scale"):
        lab.rnn_gradient_growth(0.0, 3)


def test_clipping_check_caps_the_norm_and_keeps_direction():
    result = lab.clipping_check([torch.full((3,), 10.0), torch.full((2, 2), -5.0)], max_norm=1.0)
    assert result["norm before"] == pytest.approx(math.sqrt(300 + 100))
    assert result["norm after"] == pytest.approx(1.0, abs=1e-6)
    assert result["cosine"] == pytest.approx(1.0, abs=1e-6)
    small = lab.clipping_check([torch.full((2,), 0.1)], max_norm=1.0)
    assert small["norm after"] == pytest.approx(small["norm before"])
    with pytest.raises(ValueError, match="max_norm"):
        lab.clipping_check([torch.ones(2)], 0.0)


def reference_run(x, y, lr, max_norm, steps, hidden, batch, seed, kind="rnn", optimizer="sgd"):
    """The same training written with nn.RNN/nn.GRU, nn.Linear, torch.optim and clip_grad_norm_ (one run)."""
    generator = torch.Generator().manual_seed(seed)
    bound, width = 1 / math.sqrt(hidden), lab.GATES[kind] * hidden
    shapes = ((1, width), (1, width), (hidden, width), (1, width), (hidden, 2), (1, 2))
    w_in, b_in, w_rec, b_rec, w_out, b_out = ((torch.rand(*shape, generator=generator) * 2 - 1) * bound
                                              for shape in shapes)
    rnn = (nn.RNN if kind == "rnn" else nn.GRU)(1, hidden, batch_first=True)
    head = nn.Linear(hidden, 2)
    with torch.no_grad():
        for parameter, value in ((rnn.weight_ih_l0, w_in.T), (rnn.weight_hh_l0, w_rec.T), (rnn.bias_ih_l0, b_in[0]),
                                 (rnn.bias_hh_l0, b_rec[0]), (head.weight, w_out.T), (head.bias, b_out[0])):
            parameter.copy_(value)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses, norms = [], []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator)
        loss = nn.functional.cross_entropy(head(rnn(x[idx])[0][:, -1]), y[idx])
        opt.zero_grad()
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(params, max_norm).item())
        opt.step()
        losses.append(loss.item())
    return np.array(losses), np.array(norms)


def test_clipping_sweep_matches_torch_rnn_sgd_and_clip_grad_norm_run_by_run():
    x, y = remember_first(n=64, length=5, seed=0, device="cpu")
    sweep = lab.clipping_sweep(x, y, [0.3, 2.0], max_norm=0.05, steps=4, hidden=6, batch=16, seed=1,
                               x_val=x, y_val=y)
    assert sweep["loss"].shape == sweep["grad_norm"].shape == (4, 4)
    assert list(sweep["lr"]) == [0.3, 2.0, 0.3, 2.0] and list(sweep["clipped"]) == [False, False, True, True]
    assert sweep["validation accuracy"].shape == (4,)
    for k, (lr, max_norm) in enumerate(((0.3, math.inf), (2.0, math.inf), (0.3, 0.05), (2.0, 0.05))):
        losses, norms = reference_run(x, y, lr, max_norm, steps=4, hidden=6, batch=16, seed=1)
        np.testing.assert_allclose(sweep["loss"][:, k], losses, rtol=1e-4)
        np.testing.assert_allclose(sweep["grad_norm"][:, k], norms, rtol=1e-4)
    assert not np.allclose(sweep["loss"][-1, 1], sweep["loss"][-1, 3])      # clipping changed the large-rate run


def test_train_many_gru_with_adam_matches_nn_gru_and_torch_adam():
    x, y = remember_first(n=64, length=5, seed=0, device="cpu")
    result = lab.train_many("gru", x, y, [0.01, 0.05], [math.inf, 0.1], "adam", steps=5, hidden=4, batch=16, seed=2)
    for k, (lr, max_norm) in enumerate(((0.01, math.inf), (0.05, 0.1))):
        losses, norms = reference_run(x, y, lr, max_norm, steps=5, hidden=4, batch=16, seed=2, kind="gru",
                                      optimizer="adam")
        np.testing.assert_allclose(result["loss"][:, k], losses, rtol=1e-4)
        np.testing.assert_allclose(result["grad_norm"][:, k], norms, rtol=1e-4)
    with pytest.raises(ValueError, match="equal length"):
        lab.train_many("rnn", x, y, [0.1], [1.0, 1.0])
    with pytest.raises(ValueError, match="optimizer"):
        lab.train_many("rnn", x, y, [0.1], [1.0], "lbfgs")


def test_chrono_initialisation_sets_only_the_update_gate_biases():
    plain, chrono = (lab.init_recurrent("gru", 8, [flag], length=30, seed=3) for flag in (False, True))
    _, b_in, _, b_rec, _, _ = chrono
    update = b_in[0, 0, 8:16]
    assert update.min() >= 0.0 and update.max() <= math.log(29) and update.std() > 0.3
    assert torch.equal(b_rec[0, 0, 8:16], torch.zeros(8))
    for before, after in zip(plain, chrono):                       # everything else is the same draw
        torch.testing.assert_close(before[..., :8], after[..., :8])
    with pytest.raises(ValueError, match="kind='gru'"):
        lab.init_recurrent("rnn", 8, [True], length=30)
    with pytest.raises(ValueError, match="kind"):
        lab.init_recurrent("lstm", 8, [False], length=30)


def test_chrono_gates_carry_the_first_input_further_at_initialisation():
    plain = lab.input_gradient_through_time("gru", False, 30, hidden=16, batch=64)
    chrono = lab.input_gradient_through_time("gru", True, 30, hidden=16, batch=64)
    assert plain.shape == chrono.shape == (30,)
    assert chrono[0] / chrono[-1] > 10 * plain[0] / plain[-1]


def test_sweep_summary_and_figure():
    sweep = {"loss": np.array([[1.0, 1.0], [0.2, np.inf]]), "grad_norm": np.array([[0.5, 3.0], [2.0, 4.0]]),
             "lr": np.array([0.1, 0.1]), "clipped": np.array([False, True]),
             "validation accuracy": np.array([0.9, 0.5])}
    rows = lab.sweep_summary(sweep, max_norm=1.0, last=1)
    assert rows[0]["final loss"] == 0.2 and rows[1]["final loss"] == math.inf
    assert rows[0]["share of steps clipped"] == 0.5 and rows[1]["share of steps clipped"] == 1.0
    assert rows[0]["median grad norm"] == 1.25 and rows[1]["largest grad norm"] == 4.0
    assert rows[0]["validation accuracy"] == 0.9
    assert lab.sweep_figure(rows, 1.0, 0.8).axes
    with pytest.raises(ValueError, match="lrs"):
        lab.clipping_sweep(torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), [0.0], batch=2)


def test_plateau_steps_and_best_runs():
    loss = np.array([0.7] * 10 + [0.2] * 10)
    assert lab.plateau_steps(loss, level=0.5, window=2) == 11          # steps 10-11 average 0.45, below 0.5
    assert lab.plateau_steps(np.full(8, 0.7), window=2) == 8
    losses = np.stack([np.full(60, 0.6), np.full(60, 0.1)], axis=1)   # (steps, K)
    sweep = {"net": {"loss": losses, "lr": np.array([0.01, 0.03]), "validation accuracy": np.array([0.6, 0.95])}}
    best = lab.best_runs(sweep)
    assert best["net"]["run"] == 1 and best["net"]["learning rate"] == 0.03
    assert best["net"]["validation accuracy"] == 0.95 and best["net"]["steps on the plateau"] == 20
    assert lab.gating_figure(sweep, best, length=5, window=2).axes


def test_gating_sweep_splits_the_two_grus():
    x, y = remember_first(n=64, length=4, seed=0, device="cpu")
    sweep = lab.gating_sweep(x, y, x, y, [0.01, 0.03], steps=3, hidden=4, batch=8)
    assert list(sweep) == list(lab.GATED_NETS)
    assert all(r["loss"].shape == (3, 2) and list(r["lr"]) == [0.01, 0.03] for r in sweep.values())
    assert not np.allclose(sweep["GRU"]["loss"][-1], sweep["GRU, chrono gates"]["loss"][-1])
