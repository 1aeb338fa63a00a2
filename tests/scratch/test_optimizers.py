"""The from-scratch optimizers against torch.optim, step for step, over every option they offer."""
from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch
from torch import nn

from helpers.scratch import optimizers

NAMES = ("SGD", "RMSprop", "Adam", "AdamW")

# Every option, and hyper-parameters far enough from their defaults that each term of each update rule
# moves the weights by much more than float64 round-off (eps = 0.1 makes eps's place in Adam visible).
CASES = [
    ("SGD", {}),
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.2)),
    ("SGD", dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1)),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=1e-2, alpha=0.7, eps=0.1, weight_decay=0.3)),
    ("RMSprop", dict(lr=1e-2, alpha=0.8, momentum=0.6, centered=True)),
    ("RMSprop", dict(lr=1e-2, alpha=0.6, eps=1e-3, centered=True, momentum=0.5, weight_decay=0.2)),
    ("Adam", {}),
    ("Adam", dict(lr=3e-2, betas=(0.5, 0.8), eps=0.1)),
    ("Adam", dict(lr=3e-2, betas=(0.7, 0.9), weight_decay=0.3)),
    ("Adam", dict(lr=3e-2, betas=(0.3, 0.6), eps=1e-3, amsgrad=True)),
    ("Adam", dict(lr=3e-2, betas=(0.6, 0.7), weight_decay=0.4, decoupled_weight_decay=True)),
    ("AdamW", {}),
    ("AdamW", dict(lr=3e-2, weight_decay=0.5, betas=(0.8, 0.95), eps=0.1)),
    ("AdamW", dict(lr=3e-2, weight_decay=0.0, betas=(0.4, 0.6), amsgrad=True)),
]


def net(seed: int) -> nn.Module:
    """A small float64 network: tanh makes the loss non-quadratic, so gradients change from step to step."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def largest_differences(name: str, hyper: dict, steps: int = 12, maximize: bool = False) -> list[float]:
    """After each step, the largest |w_ours - w_torch| over every weight of two identical networks."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(32, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(32, 2, generator=generator, dtype=torch.float64)
    ours, reference = net(1), net(1)
    ours_opt = getattr(optimizers, name)(ours.parameters(), maximize=maximize, **hyper)
    reference_opt = getattr(torch.optim, name)(reference.parameters(), maximize=maximize, **hyper)
    sign = -1.0 if maximize else 1.0
    differences = []
    for _ in range(steps):
        for model, opt in ((ours, ours_opt), (reference, reference_opt)):
            opt.zero_grad()
            (sign * nn.functional.mse_loss(model(x), y)).backward()
            opt.step()
        gaps = [(a - b).abs().max() for a, b in zip(ours.parameters(), reference.parameters())]
        differences.append(torch.stack(gaps).max().item())               # a NaN anywhere stays NaN
    return differences


@pytest.mark.parametrize("name,hyper", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_every_step_matches_torch_optim(name, hyper):
    differences = largest_differences(name, hyper)
    assert all(difference < 1e-13 for difference in differences), differences        # fails on NaN too


@pytest.mark.parametrize("name,hyper", CASES[1::3], ids=lambda value: str(value))
def test_maximize_climbs_exactly_like_torch_optim(name, hyper):
    assert all(difference < 1e-13 for difference in largest_differences(name, hyper, steps=4, maximize=True))


def test_the_weights_do_move_so_matching_means_something():
    model, start = net(1), copy.deepcopy(net(1))
    opt = optimizers.Adam(model.parameters(), lr=1e-2)
    model(torch.ones(1, 5, dtype=torch.float64)).sum().backward()
    opt.step()
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(model.parameters(), start.parameters()))


@pytest.mark.parametrize("name", NAMES)
def test_arguments_and_defaults_are_torch_optims(name):
    ours = inspect.signature(getattr(optimizers, name).__init__).parameters
    reference = inspect.signature(getattr(torch.optim, name).__init__).parameters
    for argument, parameter in ours.items():
        assert argument in reference, argument
        assert parameter.default == reference[argument].default, argument
    positional = [a for a, p in ours.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == list(reference)[:len(positional)]
    assert {"lr", "weight_decay"} <= set(ours)


@pytest.mark.parametrize("name", NAMES)
def test_default_settings_are_torch_optims(name):
    w = [torch.zeros(1, requires_grad=True)]
    ours, reference = getattr(optimizers, name)(w, lr=0.1).defaults, getattr(torch.optim, name)(w, lr=0.1).defaults
    assert ours == {key: reference[key] for key in ours}


# Our names for the state beside torch.optim's (SGD's and RMSprop's velocity is torch's momentum buffer).
STATE_NAMES = {"velocity": "momentum_buffer", "square_avg": "square_avg", "grad_avg": "grad_avg",
               "m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq", "t": "step"}


@pytest.mark.parametrize("name,hyper", [case for case in CASES if case[1]], ids=lambda value: str(value))
def test_the_state_matches_torch_optims_state(name, hyper):
    generator = torch.Generator().manual_seed(3)
    w_ours = torch.randn(6, generator=generator, dtype=torch.float64, requires_grad=True)
    w_reference = w_ours.detach().clone().requires_grad_(True)
    ours, reference = getattr(optimizers, name)([w_ours], **hyper), getattr(torch.optim, name)([w_reference], **hyper)
    for _ in range(5):
        for w, opt in ((w_ours, ours), (w_reference, reference)):
            w.grad = torch.sin(3 * w.detach()) + 0.5                     # a gradient that changes sign and size
            opt.step()
    for key, value in ours.state[w_ours].items():
        expected = reference.state[w_reference][STATE_NAMES[key]]
        assert torch.allclose(torch.as_tensor(value, dtype=torch.float64), expected.double(), rtol=1e-12, atol=0), key


def test_first_adam_step_is_lr_times_the_sign_of_the_gradient():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w.grad = torch.tensor([1e-3, -5.0, 200.0], dtype=torch.float64)
    optimizers.Adam([w], lr=0.01).step()
    assert torch.allclose(w.detach(), torch.tensor([-0.01, 0.01, -0.01], dtype=torch.float64), rtol=1e-4, atol=0)


def test_weight_decay_with_a_zero_gradient_by_hand():
    # AdamW: w <- w (1 - lr wd) and then a zero Adam step; Adam + L2: the first step is lr * sign(w).
    w_decoupled = torch.tensor([2.0, -4.0], dtype=torch.float64, requires_grad=True)
    w_l2 = w_decoupled.detach().clone().requires_grad_(True)
    for w in (w_decoupled, w_l2):
        w.grad = torch.zeros_like(w)
    optimizers.AdamW([w_decoupled], lr=0.1, weight_decay=0.5).step()
    optimizers.Adam([w_l2], lr=0.1, weight_decay=0.5).step()
    assert torch.equal(w_decoupled.detach(), torch.tensor([2.0 * 0.95, -4.0 * 0.95], dtype=torch.float64))
    assert torch.allclose(w_l2.detach(), torch.tensor([1.9, -3.9], dtype=torch.float64), rtol=0, atol=1e-8)


def test_weights_without_a_gradient_stay_and_get_no_state():
    used = torch.ones(2, requires_grad=True)
    unused = torch.ones(2, requires_grad=True)
    for name in NAMES:
        opt = getattr(optimizers, name)([used, unused], lr=0.1)
        used.grad = torch.ones(2)
        opt.step()
        assert torch.equal(unused.detach(), torch.ones(2)) and unused not in opt.state, name


def test_per_group_settings_are_used():
    first = torch.ones(2, requires_grad=True)
    second = torch.ones(2, requires_grad=True)
    opt = optimizers.SGD([{"params": [first]}, {"params": [second], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = first.sum() + second.sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert torch.equal(first.detach(), torch.full((2,), 0.9))
    assert torch.equal(second.detach(), torch.zeros(2))            # 1 - 0.5 * (1 + 1.0 * 1)
    assert opt.step() is None


STATE = [
    ("SGD", {}, set()),
    ("SGD", dict(momentum=0.9), {"velocity"}),
    ("RMSprop", {}, {"square_avg"}),
    ("RMSprop", dict(centered=True, momentum=0.5), {"square_avg", "grad_avg", "velocity"}),
    ("Adam", {}, {"t", "m", "v"}),
    ("AdamW", dict(amsgrad=True), {"t", "m", "v", "v_max"}),
]


@pytest.mark.parametrize("name,hyper,keys", STATE)
def test_state_holds_only_what_the_update_needs(name, hyper, keys):
    w = torch.ones(3, requires_grad=True)
    opt = getattr(optimizers, name)([w], lr=0.1, **hyper)
    for _ in range(2):
        w.grad = torch.ones(3)
        opt.step()
    assert set(opt.state[w]) == keys


def test_the_base_class_leaves_the_update_rule_to_subclasses():
    w = torch.ones(1, requires_grad=True)
    w.grad = torch.ones(1)
    opt = optimizers.ScratchOptimizer([w], dict(lr=0.1, maximize=False))
    with pytest.raises(NotImplementedError):
        opt.step()


BAD_ARGUMENTS = [
    ("SGD", dict(lr=-0.1), r"^lr must be a number in \[0.0, inf\)"),
    ("SGD", dict(lr=math.inf), r"^lr must be"),
    ("SGD", dict(momentum=1.0), r"^momentum must be a number in \[0.0, 1.0\)"),
    ("SGD", dict(momentum=-0.1), r"^momentum must be"),
    ("SGD", dict(dampening=1.5), r"^dampening must be a number in \[0.0, 1.0\]"),
    ("SGD", dict(dampening=-0.5), r"^dampening must be"),
    ("SGD", dict(weight_decay=-1.0), r"^weight_decay must be a number in \[0.0, inf\)"),
    ("SGD", dict(weight_decay=math.inf), r"^weight_decay must be"),
    ("SGD", dict(nesterov=True), r"^nesterov=True needs momentum > 0 and dampening = 0"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), r"^nesterov=True needs"),
    ("RMSprop", dict(lr=-1.0), r"^lr must be"),
    ("RMSprop", dict(lr=math.inf), r"^lr must be"),
    ("RMSprop", dict(alpha=1.5), r"^alpha must be a number in \[0.0, 1.0\]"),
    ("RMSprop", dict(alpha=-0.5), r"^alpha must be"),
    ("RMSprop", dict(eps=1.5), r"^eps must be a number in \[0.0, 1.0\]"),
    ("RMSprop", dict(eps=-1e-8), r"^eps must be"),
    ("RMSprop", dict(weight_decay=-1.0), r"^weight_decay must be"),
    ("RMSprop", dict(weight_decay=math.inf), r"^weight_decay must be"),
    ("RMSprop", dict(momentum=1.0), r"^momentum must be a number in \[0.0, 1.0\)"),
    ("RMSprop", dict(momentum=-0.5), r"^momentum must be"),
    ("Adam", dict(lr=-1.0), r"^lr must be"),
    ("Adam", dict(lr=math.inf), r"^lr must be"),
    ("Adam", dict(eps=1.5), r"^eps must be a number in \[0.0, 1.0\]"),
    ("Adam", dict(eps=-1e-8), r"^eps must be"),
    ("Adam", dict(weight_decay=-1.0), r"^weight_decay must be"),
    ("Adam", dict(weight_decay=math.inf), r"^weight_decay must be"),
    ("Adam", dict(betas=0.9), r"^betas must be a pair \(beta1, beta2\) of numbers in \[0, 1\)"),
    ("Adam", dict(betas=(0.9,)), r"^betas must be a pair"),
    ("AdamW", dict(betas=(0.9, 0.99, 0.999)), r"^betas must be a pair"),
    ("AdamW", dict(betas=(1.0, 0.9)), r"^betas\[0\] must be a number in \[0.0, 1.0\)"),
    ("AdamW", dict(betas=(-0.1, 0.9)), r"^betas\[0\] must be"),
    ("AdamW", dict(betas=(0.9, 1.0)), r"^betas\[1\] must be a number in \[0.0, 1.0\)"),
    ("AdamW", dict(betas=(0.9, -0.1)), r"^betas\[1\] must be"),
]


@pytest.mark.parametrize("name,hyper,message", BAD_ARGUMENTS)
def test_bad_arguments_name_the_parameter_and_its_range(name, hyper, message):
    with pytest.raises(ValueError, match=message):
        getattr(optimizers, name)([torch.zeros(1, requires_grad=True)], **hyper)


def test_edges_of_the_ranges_are_accepted():
    w = [torch.zeros(1, requires_grad=True)]
    optimizers.SGD(w, lr=0.0, momentum=0.0, dampening=1.0, weight_decay=0.0)
    optimizers.SGD(w, momentum=0.5, dampening=0.5)
    optimizers.RMSprop(w, alpha=1.0, eps=1.0)
    optimizers.RMSprop(w, alpha=0.0, eps=0.0, momentum=0.0)
    optimizers.Adam(w, betas=[0.0, 0.0], eps=1.0)
    assert optimizers.check_betas([0.5, 0.25]) == (0.5, 0.25)
