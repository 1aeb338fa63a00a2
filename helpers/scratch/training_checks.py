"""The decisive debugging checks: each acts on one part of a :class:`~helpers.scratch.pipeline.Pipeline`.

A check that only reads logged curves cannot tell a wrong loss from a wrong learning rate; these probe
the parts directly: feed the loss a perfect prediction, repeat one step at learning rate 0, backprop
from one example, record each layer's mode during a training step, predict twice, append padding.
Every function returns a number (or list) that a rule in :mod:`helpers.scratch.diagnose` judges.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from helpers.scratch.pipeline import Pipeline, gradient_norm
from helpers.validation import check_float, check_int

MODE_DEPENDENT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d)


def nearest_neighbour_agreement(x: torch.Tensor, y: torch.Tensor, limit: int = 1000) -> float:
    """Share of the first ``limit`` examples whose nearest *other* example carries the same label.

    A model-free test that labels belong to their inputs: shuffled labels agree only by chance.
    """
    check_int("limit", limit, 1, 1_000_000)
    queries = x[:limit].flatten(1).float()                       # (Q, features)
    distances = torch.cdist(queries, x.flatten(1).float())       # (Q, N)
    distances[torch.arange(len(queries)), torch.arange(len(queries))] = float("inf")  # not itself
    return (y[distances.argmin(1)] == y[:limit]).float().mean().item()


def majority_share(y: torch.Tensor) -> float:
    """Share of the most common label: the accuracy of the best input-independent guess."""
    return (torch.bincount(y.flatten()).max() / y.numel()).item()


@torch.no_grad()
def loss_at_init(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor) -> float:
    """The pipeline's loss of a fresh model in train mode: about ln C for C balanced classes."""
    model = pipeline.fresh_model().train()
    return pipeline.loss(model(x), x, y).item()


def confident_loss(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor, margin: float = 30.0) -> float:
    """The pipeline's loss of a confident, correct prediction (logit ``margin`` on the true class): about 0."""
    check_float("margin", margin, 1.0, 1000.0)
    logits = margin * functional.one_hot(y, pipeline.data.n_classes).float()   # (..., C)
    return pipeline.loss(logits, x, y).item()


def weight_spread(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor) -> float:
    """Largest over median per-example gradient of the loss at uniform logits (1 when all examples count alike).

    At uniform logits every example's gradient has the same size unless the loss weights it, so the
    ratio is the spread of the effective per-example weights (examples the loss ignores are skipped).
    """
    logits = torch.zeros(*y.shape, pipeline.data.n_classes, device=y.device, requires_grad=True)
    pipeline.loss(logits, x, y).backward()
    sizes = logits.grad.norm(dim=-1).flatten()                   # one size per example (or token)
    sizes = sizes[sizes > 0]
    return (sizes.max() / sizes.median()).item()


def step_gradient_ratio(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor) -> float:
    """Gradient norm after a second identical training step at learning rate 0, over the first one's.

    Both steps see the same weights, batch and dropout masks, so a healthy step gives exactly 1; a step
    that never clears old gradients adds the new ones to them and gives 2. Only the gradients the
    optimizer uses count (``optimizer.zero_grad()`` clears no others, and no others matter).
    """
    model = pipeline.fresh_model()
    optimizer = pipeline.make_optimizer(model)
    used = [p for group in optimizer.param_groups for p in group["params"]]
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    norms = []
    for _ in range(2):
        with torch.random.fork_rng():
            torch.manual_seed(pipeline.seed)
            pipeline.step(model, optimizer, x, y)
        norms.append(gradient_norm(model, used))
    return norms[1] / norms[0]


def parameters_without_gradient(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """Trainable parameter tensors (``requires_grad``) that one backward pass leaves without a gradient."""
    model = pipeline.fresh_model().train()
    pipeline.loss(model(x), x, y).backward()
    return [name for name, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.any())]


def batch_leak(model: nn.Module, x: torch.Tensor, index: int = 0) -> float:
    """Share of the gradient of example ``index``'s output that reaches *other* examples (0 when independent).

    Karpathy's backprop-dependency check, in eval mode (BatchNorm in train mode mixes a batch by design).
    Integer inputs (tokens) cannot take a gradient, so they are probed at the first embedding's output.
    """
    check_int("index", index, 0, len(x) - 1)
    model.eval()
    probes = []
    if x.is_floating_point():
        probes.append(x.detach().clone().requires_grad_())
        output = model(probes[0])
    else:
        def keep(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            out.retain_grad()
            probes.append(out)

        embedding = next(m for m in model.modules() if isinstance(m, nn.Embedding))
        handle = embedding.register_forward_hook(keep)
        output = model(x)
        handle.remove()
    direction = torch.randn(output[index].shape, generator=torch.Generator().manual_seed(0)).to(output.device)
    (output[index] * direction).sum().backward()
    if probes[0].grad is None:                                    # nothing upstream of the output: no leak
        return 0.0
    gradient = probes[0].grad.flatten(1)                          # (N, features of one example)
    others = torch.cat([gradient[:index], gradient[index + 1:]])
    return (others.norm() / gradient.norm().clamp_min(1e-30)).item()


def modes_during_training(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor) -> list[bool]:
    """The ``training`` flag of each dropout and BatchNorm layer as the pipeline's training step runs it.

    The model first predicts once, as a training loop that evaluates before it trains does: a step that
    forgets to switch back to train mode then runs in eval mode.
    """
    model = pipeline.fresh_model()
    optimizer = pipeline.make_optimizer(model)
    pipeline.predict(model, x)
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda module, inputs: seen.append(module.training))
             for m in model.modules() if isinstance(m, MODE_DEPENDENT)]
    pipeline.step(model, optimizer, x, y)
    for hook in hooks:
        hook.remove()
    return seen


def prediction_disagreement(pipeline: Pipeline, model: nn.Module, x: torch.Tensor) -> float:
    """Largest change of a predicted probability between two predictions of the same inputs (0 when deterministic)."""
    first = functional.softmax(pipeline.predict(model, x).float(), dim=-1)
    second = functional.softmax(pipeline.predict(model, x).float(), dim=-1)
    return (first - second).abs().max().item()


def overfit_one_batch(pipeline: Pipeline, x: torch.Tensor, y: torch.Tensor, steps: int = 100) -> list[float]:
    """The losses reported while the pipeline's own step trains a fresh model on one fixed batch.

    The model first predicts once, as a training loop that evaluates before it trains does, so a bug in
    how the loop switches modes is active here too.
    """
    check_int("steps", steps, 1, 100_000)
    model = pipeline.fresh_model()
    optimizer = pipeline.make_optimizer(model)
    pipeline.predict(model, x)
    return [pipeline.step(model, optimizer, x, y).item() for _ in range(steps)]


@torch.no_grad()
def padding_change(pipeline: Pipeline, model: nn.Module, x: torch.Tensor, y: torch.Tensor, extra: int = 16) -> float:
    """Relative change of the loss when ``extra`` padding columns (label 0) are appended to a batch of sequences."""
    check_int("extra", extra, 1, 10_000)
    if pipeline.pad_id is None:
        raise ValueError("pipeline.pad_id must be set: padding invariance applies to padded sequences")
    model.eval()
    x_padded = torch.cat([x, torch.full((len(x), extra), pipeline.pad_id, dtype=x.dtype, device=x.device)], 1)
    y_padded = torch.cat([y, torch.zeros((len(y), extra), dtype=y.dtype, device=y.device)], 1)
    before = pipeline.loss(model(x), x, y)
    after = pipeline.loss(model(x_padded), x_padded, y_padded)
    return ((after - before).abs() / before.abs()).item()


def class_recalls(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Recall of each class (share of its examples predicted as it); nan for a class absent from ``labels``."""
    hits = torch.bincount(labels[logits.argmax(-1) == labels], minlength=n_classes).float()
    totals = torch.bincount(labels, minlength=n_classes).float()
    return hits / totals


def input_rms(x: torch.Tensor) -> float:
    """Root mean square of the inputs: about 1 for standardized features."""
    return x.float().pow(2).mean().sqrt().item()


def standardized_mean_difference(x_train: torch.Tensor, x_val: torch.Tensor) -> float:
    """Median over features of ``|mean_val - mean_train| / std_train``: how far validation sits from training."""
    spread = x_train.float().std(0).clamp_min(1e-3)
    return ((x_val.float().mean(0) - x_train.float().mean(0)).abs() / spread).median().item()
