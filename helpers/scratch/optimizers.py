"""Optimizers from scratch: SGD (with momentum and Nesterov), RMSprop, Adam and AdamW.

Each class takes the arguments of its ``torch.optim`` namesake, with the same defaults, so
``helpers.train.make_optimizer(name, model, lr, library=optimizers)`` builds either one. (The switches
``foreach``, ``fused``, ``capturable`` and ``differentiable`` are left out: they change speed, not the
maths.) One small base class does the bookkeeping every optimizer shares; each optimizer then writes
only its ``update``, which reads like its equations. Notation: weight ``w``, gradient ``g``,
learning rate ``lr``; ``state`` is what the optimizer remembers about one weight tensor between steps.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from helpers.validation import check_float

Params = Iterable[torch.Tensor] | Iterable[dict]


class ScratchOptimizer(torch.optim.Optimizer):
    """The loop every optimizer shares: for each weight that has a gradient, call ``update``.

    ``maximize=True`` climbs instead of descending, by handing ``update`` the negated gradient.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every weight that has a gradient; returns the closure's loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    g = -w.grad if group["maximize"] else w.grad
                    self.update(w, g, group, self.state[w])
        return loss

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        """Change ``w`` in place from its gradient ``g``, its group's settings and its ``state``."""
        raise NotImplementedError


class SGD(ScratchOptimizer):
    """Stochastic gradient descent, optionally with momentum (heavy ball or Nesterov) and an L2 term.

    g = g + weight_decay * w;   v = momentum * v + (1 - dampening) * g   (v = g at the first step);
    step along v (heavy ball) or along g + momentum * v (Nesterov);   w = w - lr * step.
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        check_float("lr", lr, 0.0, math.inf, hi_open=True)
        check_float("momentum", momentum, 0.0, 1.0, hi_open=True)
        check_float("dampening", dampening, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, math.inf, hi_open=True)
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got {momentum}, {dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        momentum = group["momentum"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w                   # the L2 penalty's gradient
        if momentum:
            if "velocity" in state:                             # a running sum of past gradients
                state["velocity"] = momentum * state["velocity"] + (1 - group["dampening"]) * g
            else:
                state["velocity"] = g.clone()
            velocity = state["velocity"]
            g = g + momentum * velocity if group["nesterov"] else velocity
        w.sub_(group["lr"] * g)


class RMSprop(ScratchOptimizer):
    """RMSprop (Hinton, 2012): divide the gradient by a running root-mean-square of its own history.

    s = alpha * s + (1 - alpha) * g^2;   w = w - lr * g / (sqrt(s) + eps).
    ``centered`` divides by the running standard deviation instead (s minus the squared running mean
    of g); ``momentum`` accumulates the divided steps in a velocity.
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        check_float("lr", lr, 0.0, math.inf, hi_open=True)
        check_float("alpha", alpha, 0.0, 1.0)
        check_float("eps", eps, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, math.inf, hi_open=True)
        check_float("momentum", momentum, 0.0, 1.0, hi_open=True)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        state["square_avg"] = alpha * state.get("square_avg", 0) + (1 - alpha) * g * g
        variance = state["square_avg"]
        if group["centered"]:
            state["grad_avg"] = alpha * state.get("grad_avg", 0) + (1 - alpha) * g
            variance = variance - state["grad_avg"] ** 2
        step = g / (variance.sqrt() + group["eps"])             # each coordinate divided by its own scale
        if momentum:
            state["velocity"] = momentum * state.get("velocity", 0) + step
            step = state["velocity"]
        w.sub_(group["lr"] * step)


def check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    """Adam's (beta1, beta2): a pair of decay rates, each in [0, 1)."""
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}")
    return (check_float("betas[0]", betas[0], 0.0, 1.0, hi_open=True),
            check_float("betas[1]", betas[1], 0.0, 1.0, hi_open=True))


class Adam(ScratchOptimizer):
    """Adam (Kingma & Ba, 2015): momentum divided by a running RMS, both corrected for their zero start.

    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2;   after t steps
    m_hat = m / (1 - b1^t);   v_hat = v / (1 - b2^t);   w = w - lr * m_hat / (sqrt(v_hat) + eps).
    ``weight_decay`` adds an L2 term to g, as ``torch.optim.Adam`` does (``decoupled_weight_decay``
    makes it AdamW); ``amsgrad`` divides by the largest v seen so far instead of the current one.
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False) -> None:
        check_float("lr", lr, 0.0, math.inf, hi_open=True)
        betas = check_betas(betas)
        check_float("eps", eps, 0.0, 1.0)
        check_float("weight_decay", weight_decay, 0.0, math.inf, hi_open=True)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def update(self, w: torch.Tensor, g: torch.Tensor, group: dict, state: dict) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if group["decoupled_weight_decay"]:
            w.mul_(1 - lr * weight_decay)                       # AdamW: shrink w itself
        elif weight_decay:
            g = g + weight_decay * w                            # Adam: an L2 term inside the gradient
        state["t"] = state.get("t", 0) + 1                      # steps taken
        state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g          # first moment: direction
        state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g      # second moment: scale
        v = state["v"]
        if group["amsgrad"]:
            state["v_max"] = v = torch.maximum(state.get("v_max", v), v)
        m_hat = state["m"] / (1 - beta1 ** state["t"])          # undo the bias towards the zero start
        v_hat = v / (1 - beta2 ** state["t"])
        w.sub_(lr * m_hat / (v_hat.sqrt() + group["eps"]))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    w = w * (1 - lr * weight_decay) - lr * m_hat / (sqrt(v_hat) + eps): the decay acts on w directly,
    so it is the same fraction for every weight, whatever its gradients were.
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
