"""Notebook 01, section 6: gradients through time -- exact growth in a linear RNN, clipping, and gating.

* :func:`rnn_gradient_growth`: ||dL/dh_0|| / ||dL/dh_T|| of a linear or tanh RNN with a scaled orthogonal matrix.
* :func:`clipping_check`: ``clip_grad_norm_`` caps the norm and keeps the direction.
* :func:`clipping_sweep`: many tanh RNNs trained at once (one per learning rate, clipped or not), from the
  same initial weights on the same mini-batches, so their only difference is the learning rate and clipping.
* :func:`train_sequence_model`: a tanh RNN, a GRU or an LSTM trained on the same long task.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from helpers import plotting
from helpers.validation import check_choice, check_float, check_int


def orthogonal(width: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random orthogonal ``width`` x ``width`` matrix (QR of a Gaussian matrix, signs fixed)."""
    check_int("width", width, 1, 2048)
    q, r = torch.linalg.qr(torch.randn(width, width, dtype=dtype, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


def rnn_gradient_growth(scale: float, steps: int, nonlinearity: str = "linear", width: int = 32,
                        seed: int = 0) -> float:
    """Natural log of ||dL/dh_0|| / ||dL/dh_T|| for h_t = phi(s Q h_{t-1} + x_t) after ``steps`` steps.

    With phi the identity the Jacobian is (sQ)^T and the ratio is exactly s^T (Q keeps norms); with
    tanh each step also multiplies by tanh' <= 1.
    """
    check_float("scale", scale, 0.0, 10.0, lo_open=True)
    check_int("steps", steps, 1, 1000)
    check_choice("nonlinearity", nonlinearity, ("linear", "tanh"))
    generator = torch.Generator().manual_seed(seed)
    recurrent = scale * orthogonal(width, seed)
    inputs = torch.randn(steps, width, dtype=torch.float64, generator=generator)
    h0 = torch.randn(width, dtype=torch.float64, generator=generator).requires_grad_()
    h = h0
    for t in range(steps):
        h = recurrent @ h + inputs[t]
        h = torch.tanh(h) if nonlinearity == "tanh" else h
    h.retain_grad()
    direction = torch.randn(width, dtype=torch.float64, generator=generator)
    (direction @ h).backward()
    return math.log(h0.grad.norm().item() / h.grad.norm().item())


def clipping_check(grads: Sequence[torch.Tensor], max_norm: float) -> dict[str, float]:
    """``clip_grad_norm_`` on copies of ``grads``: the norm before and after, and the cosine with the original."""
    check_float("max_norm", max_norm, 0.0, 1e12, lo_open=True)
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.detach().clone()
    before = torch.cat([g.flatten() for g in grads]).double()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    after = torch.cat([p.grad.flatten() for p in params]).double()
    return {"norm before": before.norm().item(), "norm after": after.norm().item(),
            "cosine": (before @ after / (before.norm() * after.norm())).item()}


# --------------------------------------------------------------------------- many RNNs at once: rate x clipping
def clipping_sweep(x: torch.Tensor, y: torch.Tensor, lrs: Sequence[float], max_norm: float = 1.0, steps: int = 400,
                   hidden: int = 32, batch: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Train 2 x len(lrs) one-layer tanh RNN classifiers with plain SGD at once: each rate unclipped and clipped.

    Every run starts from the same weights and sees the same mini-batches; the runs are stacked along a
    leading dimension K and share nothing else. Returns ``loss`` and ``grad_norm`` (before clipping),
    each of shape (steps, K), and ``lr`` and ``clipped`` (whether a run clips) of shape (K,).
    """
    check_float("max_norm", max_norm, 0.0, 1e6, lo_open=True)
    check_int("steps", steps, 1, 100_000)
    check_int("hidden", hidden, 1, 512)
    check_int("batch", batch, 1, len(x))
    for lr in lrs:
        check_float("lrs", lr, 0.0, 100.0, lo_open=True)
    k = 2 * len(lrs)
    lr = torch.tensor(list(lrs) * 2, dtype=x.dtype, device=x.device)                          # (K,)
    limit = torch.tensor([math.inf] * len(lrs) + [max_norm] * len(lrs), dtype=x.dtype, device=x.device)
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(hidden)                                       # nn.RNN's initialisation range

    def shared(*shape: int) -> torch.Tensor:
        weights = (torch.rand(*shape, generator=generator) * 2 - 1) * bound
        return weights.to(x.device).expand(k, *shape).clone().requires_grad_()

    params = [shared(1, hidden), shared(hidden, hidden), shared(1, hidden), shared(hidden, 2), shared(1, 2)]
    w_in, w_rec, b, w_out, b_out = params
    losses, norms = torch.zeros(steps, k), torch.zeros(steps, k)
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator).to(x.device)
        xb, yb = x[idx], y[idx]                                                # (B, T, 1), (B,)
        h = torch.zeros(k, batch, hidden, dtype=x.dtype, device=x.device)      # (K, B, hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(xb[None, :, t] * w_in + torch.bmm(h, w_rec) + b)   # (K, B, hidden)
        logits = torch.bmm(h, w_out) + b_out                                   # (K, B, 2)
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), yb.expand(k, batch), reduction="none").mean(1)
        grads = torch.autograd.grad(loss.sum(), params)                        # run k's loss only reaches run k
        norm = torch.sqrt(sum((g.reshape(k, -1) ** 2).sum(1) for g in grads))  # (K,) global norm per run
        factor = torch.clamp(limit / (norm + 1e-6), max=1.0)                   # clip_grad_norm_'s rescaling
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= (lr * factor).view(k, 1, 1) * g
        losses[step], norms[step] = loss.detach().cpu(), norm.detach().cpu()
    return {"loss": losses.numpy(), "grad_norm": norms.numpy(), "lr": np.array(list(lrs) * 2),
            "clipped": np.array([False] * len(lrs) + [True] * len(lrs))}


def sweep_summary(sweep: dict[str, np.ndarray], max_norm: float, last: int = 50) -> list[dict[str, float]]:
    """One row per run: learning rate, clipping, final loss (mean of the last ``last`` steps, inf if it diverged),
    worst loss, median and largest gradient norm, and the share of steps whose norm exceeded ``max_norm``."""
    rows = []
    for k in range(len(sweep["lr"])):
        loss, norm = sweep["loss"][:, k], sweep["grad_norm"][:, k]
        final = float(np.mean(loss[-last:])) if np.isfinite(loss).all() else math.inf
        rows.append({"learning rate": float(sweep["lr"][k]), "clipping": "clip" if sweep["clipped"][k] else "none",
                     "final loss": final, "worst loss": float(np.nanmax(loss)),
                     "median grad norm": float(np.nanmedian(norm)), "largest grad norm": float(np.nanmax(norm)),
                     "share of steps clipped": float(np.mean(norm > max_norm))})
    return rows


def sweep_figure(rows: Sequence[dict[str, float]], max_norm: float, chance: float = math.log(2)):
    """Final loss against learning rate, unclipped and clipped, with chance level; diverged runs drawn at the top."""
    fig, ax = plotting.figure("tanh RNN on remember-first, plain SGD: final loss against learning rate",
                              "learning rate (log scale)", "final training loss (nats, log scale)")
    top = 20.0
    for clipping, marker, label in (("none", "o-", "no clipping"), ("clip", "s-", f"clipped at norm {max_norm:g}")):
        chosen = [r for r in rows if r["clipping"] == clipping]
        ax.plot([r["learning rate"] for r in chosen], [min(r["final loss"], top) for r in chosen], marker, label=label)
    ax.axhline(chance, color="black", ls=":", lw=1, label="chance, ln 2")
    ax.axhline(chance / 2, color="0.5", ls="--", lw=1, label="trained: below half of ln 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(None, top * 1.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


# --------------------------------------------------------------------------- gating against the same long task
class SequenceClassifier(nn.Module):
    """A one-layer recurrent net (tanh RNN, GRU or LSTM) that classifies a sequence from its last hidden state.

    The LSTM's forget-gate bias starts at ``forget_bias`` (1 is the usual choice: Gers et al. 2000,
    Jozefowicz et al. 2015), so the cell starts out keeping about 73% of its content each step.
    """

    def __init__(self, kind: str, hidden: int = 32, n_classes: int = 2, forget_bias: float = 1.0) -> None:
        super().__init__()
        check_choice("kind", kind, ("rnn", "gru", "lstm"))
        check_int("hidden", hidden, 1, 1024)
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](1, hidden, batch_first=True)
        if kind == "lstm":
            with torch.no_grad():
                self.rnn.bias_ih_l0[hidden:2 * hidden] = forget_bias    # PyTorch orders the gates i, f, g, o
                self.rnn.bias_hh_l0[hidden:2 * hidden] = 0.0
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])                          # (B, T, hidden) -> last step -> (B, classes)


def train_sequence_model(kind: str, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                         steps: int = 400, lr: float = 0.03, hidden: int = 32, batch: int = 64,
                         seed: int = 0) -> dict[str, float | np.ndarray]:
    """Train :class:`SequenceClassifier` with Adam and clipping at norm 1; per-step loss and validation accuracy."""
    check_int("steps", steps, 1, 100_000)
    check_float("lr", lr, 0.0, 1.0, lo_open=True)
    check_int("batch", batch, 1, len(x))
    torch.manual_seed(seed)
    model = SequenceClassifier(kind, hidden).to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator).to(x.device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return {"loss": np.array(losses), "validation accuracy": accuracy}


def gating_figure(runs: dict[str, dict], length: int, window: int = 20):
    """Training loss of each recurrent net against the step ({window}-step moving average), chance level drawn."""
    check_int("window", window, 1, 1000)
    fig, ax = plotting.figure(f"Remember-first over {length} steps: " + " against ".join(runs),
                              "training step", "training loss (nats, moving average)")
    kernel = np.ones(window) / window
    for name, run in runs.items():
        smooth = np.convolve(run["loss"], kernel, mode="valid")
        ax.plot(np.arange(window, len(run["loss"]) + 1), smooth,
                label=f"{name} (validation accuracy {run['validation accuracy']:.2f})")
    ax.axhline(math.log(2), color="black", ls=":", lw=1, label="chance, ln 2")
    ax.set_ylim(0, 0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig
