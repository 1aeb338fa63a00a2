"""Notebook 01, section 6: gradients through time -- exact growth in a linear RNN, clipping, and gating.

* :func:`rnn_gradient_growth`: ||dL/dh_0|| / ||dL/dh_T|| of a linear or tanh RNN with a scaled orthogonal matrix.
* :func:`clipping_check`: ``clip_grad_norm_`` caps the norm and keeps the direction.
* :func:`train_many`: K small recurrent classifiers (tanh RNN or GRU) trained at once, stacked along a leading
  dimension: one learning rate, clipping threshold and gate initialisation per run, the same mini-batches.
* :func:`clipping_sweep` (plain SGD, each rate with and without clipping) and :func:`gating_sweep` (Adam, a
  tanh RNN and a GRU with and without remember-biased gates, each at every rate) are built on it.
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


# --------------------------------------------------------------------------- many recurrent nets at once
GATES = {"rnn": 1, "gru": 3}          # blocks of `hidden` columns in the input and recurrent weights


def init_recurrent(kind: str, hidden: int, chrono: Sequence[bool], length: int, seed: int = 0) -> list[torch.Tensor]:
    """Weights of K = len(chrono) recurrent classifiers, every run starting from the same draw.

    As in ``nn.RNN``/``nn.GRU`` and ``nn.Linear``, every entry is uniform in +-1/sqrt(hidden). A run with
    ``chrono`` True gets the chrono initialisation of its GRU update gates (Tallec & Ollivier 2018): bias
    log U(1, length - 1), so each unit starts out keeping a share u/(1+u) of its state per step -- memory
    time scales spread from 1 to ``length`` steps instead of all near 2.
    """
    check_choice("kind", kind, GATES)
    check_int("hidden", hidden, 1, 512)
    check_int("length", length, 3, 10_000)
    if any(chrono) and kind != "gru":
        raise ValueError(f"chrono initialisation needs kind='gru' (it sets update-gate biases), got kind={kind!r}")
    generator = torch.Generator().manual_seed(seed)
    bound, k, width = 1.0 / math.sqrt(hidden), len(chrono), GATES[kind] * hidden

    def shared(*shape: int) -> torch.Tensor:
        return ((torch.rand(*shape, generator=generator) * 2 - 1) * bound).expand(k, *shape).clone()

    w_in, b_in, w_rec, b_rec, w_out, b_out = (shared(1, width), shared(1, width), shared(hidden, width),
                                              shared(1, width), shared(hidden, 2), shared(1, 2))
    remember = torch.log(1 + torch.rand(hidden, generator=generator) * (length - 2))       # log U(1, length - 1)
    for run, biased in enumerate(chrono):
        if biased:                                     # PyTorch orders a GRU's gates r, z, n; z keeps the state
            b_in[run, 0, hidden:2 * hidden], b_rec[run, 0, hidden:2 * hidden] = remember, 0.0
    return [p.requires_grad_() for p in (w_in, b_in, w_rec, b_rec, w_out, b_out)]


def recurrent_logits(kind: str, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Class logits (K, B, 2) of K stacked recurrent nets read out at the last step; ``x`` is (B, T, 1).

    tanh RNN: h = tanh(W_in x_t + b_in + W_rec h + b_rec). GRU (PyTorch's equations):
    r, z = sigmoid(...), n = tanh(W_in,n x_t + b_in,n + r * (W_rec,n h + b_rec,n)), h = (1 - z) n + z h.
    """
    w_in, b_in, w_rec, b_rec, w_out, b_out = params
    hidden = w_rec.shape[1]
    inputs = (x.transpose(0, 1)[:, None] * w_in + b_in).unbind(0)          # T x (K, B, gates * hidden)
    h = torch.zeros(w_rec.shape[0], x.shape[0], hidden, dtype=x.dtype, device=x.device)   # (K, B, hidden)
    for step_input in inputs:
        recurrent = torch.baddbmm(b_rec, h, w_rec)                          # (K, B, gates * hidden)
        if kind == "rnn":
            h = torch.tanh(step_input + recurrent)
        else:
            reset, keep = torch.sigmoid(step_input[..., :2 * hidden] + recurrent[..., :2 * hidden]).split(hidden, -1)
            candidate = torch.tanh(step_input[..., 2 * hidden:] + reset * recurrent[..., 2 * hidden:])
            h = candidate + keep * (h - candidate)                          # (1 - z) n + z h
    return torch.baddbmm(b_out, h, w_out)                                   # (K, B, 2)


def train_many(kind: str, x: torch.Tensor, y: torch.Tensor, lrs: Sequence[float], max_norms: Sequence[float],
               optimizer: str = "sgd", chrono: Sequence[bool] | None = None, steps: int = 400, hidden: int = 32,
               batch: int = 32, seed: int = 0, x_val: torch.Tensor | None = None,
               y_val: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Train K recurrent classifiers at once, run k with learning rate ``lrs[k]`` and clipping at ``max_norms[k]``.

    Every run starts from the same weights (up to its gate initialisation) and sees the same mini-batches;
    the runs share nothing else. ``optimizer`` is plain "sgd" or "adam" (torch.optim.Adam's defaults), each
    applied to the gradient after ``clip_grad_norm_``'s rescaling (``inf`` never clips). Returns ``loss``
    and ``grad_norm`` (before clipping) of shape (steps, K), ``lr`` and ``max_norm`` of shape (K,), and
    ``validation accuracy`` (K,) when ``x_val``, ``y_val`` are given.
    """
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    check_int("steps", steps, 1, 100_000)
    check_int("batch", batch, 1, len(x))
    if len(lrs) != len(max_norms) or not lrs:
        raise ValueError(f"lrs and max_norms must be non-empty and of equal length, got {len(lrs)} and "
                         f"{len(max_norms)}")
    for lr, max_norm in zip(lrs, max_norms):
        check_float("lrs", lr, 0.0, 100.0, lo_open=True)
        check_float("max_norms", max_norm, 0.0, math.inf, lo_open=True)
    k = len(lrs)
    params = init_recurrent(kind, hidden, chrono or [False] * k, x.shape[1], seed)
    params = [p.detach().to(x.device).requires_grad_() for p in params]
    lr = torch.tensor(list(lrs), dtype=x.dtype, device=x.device).view(k, 1, 1)
    limit = torch.tensor(list(max_norms), dtype=x.dtype, device=x.device)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    generator = torch.Generator().manual_seed(seed)
    losses, norms = torch.zeros(steps, k), torch.zeros(steps, k)
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch,), generator=generator).to(x.device)
        logits = recurrent_logits(kind, params, x[idx])                         # (K, B, 2)
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), y[idx].expand(k, batch), reduction="none").mean(1)
        grads = torch.autograd.grad(loss.sum(), params)                         # run k's loss only reaches run k
        norm = torch.sqrt(sum((g.reshape(k, -1) ** 2).sum(1) for g in grads))   # (K,) global norm per run
        factor = torch.clamp(limit / (norm + 1e-6), max=1.0).view(k, 1, 1)      # clip_grad_norm_'s rescaling
        with torch.no_grad():
            for p, g, (mean, square) in zip(params, grads, moments):
                g = g * factor
                if optimizer == "adam":                                        # Adam, betas (0.9, 0.999), eps 1e-8
                    mean.mul_(0.9).add_(g, alpha=0.1)
                    square.mul_(0.999).addcmul_(g, g, value=0.001)
                    g = (mean / (1 - 0.9 ** step)) / ((square / (1 - 0.999 ** step)).sqrt() + 1e-8)
                p -= lr * g
        losses[step - 1], norms[step - 1] = loss.detach().cpu(), norm.detach().cpu()
    result = {"loss": losses.numpy(), "grad_norm": norms.numpy(), "lr": np.array(lrs, float),
              "max_norm": np.array(max_norms, float)}
    if x_val is not None and y_val is not None:
        with torch.no_grad():
            correct = recurrent_logits(kind, params, x_val).argmax(-1) == y_val          # (K, n_val)
        result["validation accuracy"] = correct.float().mean(1).cpu().numpy()
    return result


# --------------------------------------------------------------------------- clipping against lower rates
def clipping_sweep(x: torch.Tensor, y: torch.Tensor, lrs: Sequence[float], max_norm: float = 1.0, steps: int = 400,
                   hidden: int = 32, batch: int = 64, seed: int = 0, x_val: torch.Tensor | None = None,
                   y_val: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Plain-SGD tanh RNNs at every rate of ``lrs``, each unclipped and clipped at ``max_norm`` (2 x len(lrs) runs).

    Adds ``clipped`` (K,): whether run k clips. See :func:`train_many`.
    """
    check_float("max_norm", max_norm, 0.0, 1e6, lo_open=True)
    result = train_many("rnn", x, y, list(lrs) * 2, [math.inf] * len(lrs) + [max_norm] * len(lrs), "sgd",
                        steps=steps, hidden=hidden, batch=batch, seed=seed, x_val=x_val, y_val=y_val)
    result["clipped"] = np.isfinite(result["max_norm"])
    return result


def sweep_summary(sweep: dict[str, np.ndarray], max_norm: float, last: int = 50) -> list[dict[str, float]]:
    """One row per run: learning rate, clipping, final loss (mean of the last ``last`` steps, inf if it diverged),
    worst loss, validation accuracy, median and largest gradient norm, and the share of steps clipped."""
    rows = []
    for k in range(len(sweep["lr"])):
        loss, norm = sweep["loss"][:, k], sweep["grad_norm"][:, k]
        final = float(np.mean(loss[-last:])) if np.isfinite(loss).all() else math.inf
        rows.append({"learning rate": float(sweep["lr"][k]), "clipping": "clip" if sweep["clipped"][k] else "none",
                     "final loss": final, "worst loss": float(np.nanmax(loss)),
                     "validation accuracy": float(sweep["validation accuracy"][k]),
                     "median grad norm": float(np.nanmedian(norm)), "largest grad norm": float(np.nanmax(norm)),
                     "share of steps clipped": float(np.mean(norm > max_norm))})
    return rows


# --------------------------------------------------------------------------- gating, each net at its best rate
GATED_NETS = {"tanh RNN": ("rnn", False), "GRU": ("gru", False), "GRU, chrono gates": ("gru", True)}


def gating_sweep(x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, lrs: Sequence[float],
                 steps: int = 400, hidden: int = 32, batch: int = 32,
                 seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Each net of :data:`GATED_NETS` trained with Adam and clipping at norm 1 at every rate of ``lrs``.

    The two GRUs (PyTorch's initialisation, and chrono-initialised update gates) train side by side in one
    stack. Returns one :func:`train_many` result per net, its runs in the order of ``lrs``.
    """
    n = len(lrs)
    common = dict(optimizer="adam", steps=steps, hidden=hidden, batch=batch, seed=seed, x_val=x_val, y_val=y_val)
    tanh_rnn = train_many("rnn", x, y, lrs, [1.0] * n, **common)
    grus = train_many("gru", x, y, list(lrs) * 2, [1.0] * 2 * n, chrono=[False] * n + [True] * n, **common)
    split = {name: {key: value[..., :n] if chrono_runs == 0 else value[..., n:] for key, value in grus.items()}
             for name, chrono_runs in (("GRU", 0), ("GRU, chrono gates", 1))}
    return {"tanh RNN": tanh_rnn, **split}


def plateau_steps(loss: np.ndarray, level: float = 0.5, window: int = 20) -> int:
    """Steps until the ``window``-step moving average of ``loss`` first falls below ``level`` (len(loss) if never)."""
    check_int("window", window, 1, len(loss))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    below = np.flatnonzero(smooth < level)
    return int(below[0] + window) if len(below) else len(loss)


def best_runs(sweep: dict[str, dict[str, np.ndarray]], last: int = 50) -> dict[str, dict[str, float]]:
    """Per net, the run with the lowest final training loss (mean of the last ``last`` steps), and its numbers."""
    best = {}
    for name, result in sweep.items():
        final = result["loss"][-last:].mean(0)                              # (K,)
        k = int(np.nanargmin(final))
        best[name] = {"learning rate": float(result["lr"][k]), "final loss": float(final[k]),
                      "validation accuracy": float(result["validation accuracy"][k]),
                      "steps on the plateau": plateau_steps(result["loss"][:, k]), "run": k}
    return best


def input_gradient_through_time(kind: str, chrono: bool, length: int, hidden: int = 32, batch: int = 256,
                                seed: int = 0) -> np.ndarray:
    """||dLoss/dx_t|| for every step t of a freshly initialised net (see :func:`init_recurrent`), on noise inputs.

    How strongly the loss can feel the input at step t: at t = 1 this is the signal remember-first needs.
    """
    check_int("batch", batch, 1, 100_000)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, 1, generator=generator, requires_grad=True)          # (B, T, 1)
    y = (x[:, 0, 0] > 0).long().detach()
    params = init_recurrent(kind, hidden, [chrono], length, seed)
    logits = recurrent_logits(kind, params, x)[0]                                       # (B, 2)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, y), x)
    return grad[..., 0].norm(dim=0).numpy()                                            # (T,)


def gating_figure(sweep: dict[str, dict[str, np.ndarray]], best: dict[str, dict[str, float]], length: int,
                  window: int = 20):
    """Left: validation accuracy against the learning rate, per net. Right: the training loss of each net's
    best run ({window}-step moving average), with chance level, ln 2."""
    check_int("window", window, 1, 1000)
    fig, (left, right) = plotting.figure(f"Remember-first over {length} steps: Adam, clipped at norm 1, "
                                         "each net at every learning rate", "learning rate (log scale)",
                                         "validation accuracy (fraction)", ncols=2, figsize=(10.5, 3.9))
    kernel = np.ones(window) / window
    for k, (name, result) in enumerate(sweep.items()):
        left.plot(result["lr"], result["validation accuracy"], marker="osD"[k % 3], ms=7 - 2 * k, label=name)
        run = result["loss"][:, best[name]["run"]]
        right.plot(np.arange(window, len(run) + 1), np.convolve(run, kernel, mode="valid"),
                   label=f"{name}, lr {best[name]['learning rate']:g}")
    left.set_xscale("log")
    left.set_ylim(0.4, 1.02)
    left.axhline(0.5, color="black", ls=":", lw=1)
    left.set_title("every run", fontsize=10)
    right.set_title("each net's best run", fontsize=10)
    right.set_xlabel("training step")
    right.set_ylabel("training loss (nats, moving average)")
    right.axhline(math.log(2), color="black", ls=":", lw=1, label="chance, ln 2")
    right.set_ylim(0, 0.8)
    right.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig


def sweep_figure(rows: Sequence[dict[str, float]], max_norm: float, trained: float):
    """Validation accuracy (left) and worst training loss (right) against the learning rate, clipped or not."""
    fig, (left, right) = plotting.figure("tanh RNN on remember-first, plain SGD, with and without clipping",
                                         "learning rate (log scale)", "validation accuracy (fraction)", ncols=2,
                                         figsize=(10.5, 3.9))
    for clipping, marker, label in (("none", "o-", "no clipping"), ("clip", "s--", f"clipped at norm {max_norm:g}")):
        chosen = [r for r in rows if r["clipping"] == clipping]
        rates = [r["learning rate"] for r in chosen]
        left.plot(rates, [r["validation accuracy"] for r in chosen], marker, label=label)
        right.plot(rates, [r["worst loss"] for r in chosen], marker, label=label)
    left.axhline(trained, color="0.5", ls="--", lw=1, label=f"learned: accuracy {trained:g} or more")
    left.axhline(0.5, color="black", ls=":", lw=1, label="chance, 0.5")
    left.set_ylim(0.4, 1.02)
    right.axhline(math.log(2), color="black", ls=":", lw=1, label="chance loss, ln 2")
    right.set_ylabel("worst training loss of the run (nats, log scale)")
    for ax in (left, right):
        ax.set_xscale("log")
    right.set_yscale("log")
    left.set_title("final validation accuracy", fontsize=10)
    right.set_title("largest loss met during training", fontsize=10)
    handles = {label: handle for ax in (left, right) for handle, label in zip(*ax.get_legend_handles_labels())}
    right.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig
