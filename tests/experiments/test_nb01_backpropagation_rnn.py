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


def reference_run(x, y, lr, max_norm, steps, hidden, batch, seed):
    """The same training written with nn.RNN, nn.Linear, torch.optim.SGD and clip_grad_norm_ (one run)."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(hidden)
    shapes = ((1, hidden), (hidden, hidden), (1, hidden), (hidden, 2), (1, 2))
    w_in, w_rec, b, w_out, b_out = ((torch.rand(*shape, generator=generator) * 2 - 1) * bound for shape in shapes)
    rnn, head = nn.RNN(1, hidden, batch_first=True), nn.Linear(hidden, 2)
    with torch.no_grad():
        for parameter, value in ((rnn.weight_ih_l0, w_in.T), (rnn.weight_hh_l0, w_rec.T), (rnn.bias_ih_l0, b[0]),
                                 (rnn.bias_hh_l0, torch.zeros(hidden)), (head.weight, w_out.T), (head.bias, b_out[0])):
            parameter.copy_(value)
    rnn.bias_hh_l0.requires_grad_(False)            # one recurrent bias, as in the stacked runs
    params = [p for p in (*rnn.parameters(), *head.parameters()) if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr)
    losses, norms = [], []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator)
        loss = nn.functional.cross_entropy(head(rnn(x[idx])[0][:, -1]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(params, max_norm).item())
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses), np.array(norms)


def test_clipping_sweep_matches_torch_rnn_sgd_and_clip_grad_norm_run_by_run():
    x, y = remember_first(n=64, length=5, seed=0, device="cpu")
    sweep = lab.clipping_sweep(x, y, [0.3, 2.0], max_norm=0.05, steps=4, hidden=6, batch=16, seed=1)
    assert sweep["loss"].shape == sweep["grad_norm"].shape == (4, 4)
    assert list(sweep["lr"]) == [0.3, 2.0, 0.3, 2.0] and list(sweep["clipped"]) == [False, False, True, True]
    for k, (lr, max_norm) in enumerate(((0.3, math.inf), (2.0, math.inf), (0.3, 0.05), (2.0, 0.05))):
        losses, norms = reference_run(x, y, lr, max_norm, steps=4, hidden=6, batch=16, seed=1)
        np.testing.assert_allclose(sweep["loss"][:, k], losses, rtol=1e-4)
        np.testing.assert_allclose(sweep["grad_norm"][:, k], norms, rtol=1e-4)
    assert not np.allclose(sweep["loss"][-1, 1], sweep["loss"][-1, 3])      # clipping changed the large-rate run


def test_sweep_summary_and_figure():
    sweep = {"loss": np.array([[1.0, 1.0], [0.2, np.inf]]), "grad_norm": np.array([[0.5, 3.0], [2.0, 4.0]]),
             "lr": np.array([0.1, 0.1]), "clipped": np.array([False, True])}
    rows = lab.sweep_summary(sweep, max_norm=1.0, last=1)
    assert rows[0]["final loss"] == 0.2 and rows[1]["final loss"] == math.inf
    assert rows[0]["share of steps clipped"] == 0.5 and rows[1]["share of steps clipped"] == 1.0
    assert rows[0]["median grad norm"] == 1.25 and rows[1]["largest grad norm"] == 4.0
    assert lab.sweep_figure(rows, 1.0).axes
    with pytest.raises(ValueError, match="lrs"):
        lab.clipping_sweep(torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), [0.0], batch=2)


def test_sequence_models_and_lstm_forget_bias():
    lstm = lab.SequenceClassifier("lstm", hidden=4, forget_bias=2.0)
    assert torch.equal(lstm.rnn.bias_ih_l0[4:8], torch.full((4,), 2.0))
    assert torch.equal(lstm.rnn.bias_hh_l0[4:8], torch.zeros(4))
    assert lab.SequenceClassifier("gru", hidden=4)(torch.randn(3, 5, 1)).shape == (3, 2)
    with pytest.raises(ValueError, match="kind"):
        lab.SequenceClassifier("transformer")


def test_train_sequence_model_records_loss_and_accuracy():
    x, y = remember_first(n=64, length=3, seed=0, device="cpu")
    run = lab.train_sequence_model("gru", x, y, x, y, steps=5, hidden=4, batch=8)
    assert run["loss"].shape == (5,) and 0.0 <= run["validation accuracy"] <= 1.0
    assert lab.gating_figure({"GRU": run}, length=3, window=2).axes
    with pytest.raises(ValueError, match="steps"):
        lab.train_sequence_model("rnn", x, y, x, y, steps=0)
