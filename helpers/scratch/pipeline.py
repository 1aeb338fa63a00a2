"""A training pipeline split into the parts a bug can live in.

Data preparation, model construction, the loss, the optimizer, the training step and prediction are
separate fields of one :class:`Pipeline`, so a bug can be planted in exactly one of them by replacing
that field (``dataclasses.replace(pipeline, loss=buggy_loss)``) and the checks in
:mod:`helpers.scratch.training_checks` can act on each part directly. :func:`train` runs the loop and
records what the checks read: the loss each step reported, the gradient norm, the size of each update
relative to the weights, and which parameter tensors moved in the first steps.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional

from helpers.data import Splits
from helpers.models import mlp
from helpers.progress import Report
from helpers.validation import check_int

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (output, x, y) -> scalar
EARLY_STEPS = 20  # "does every parameter tensor move?" is asked after this many steps


def cross_entropy(output: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The classification loss: raw logits in, mean cross-entropy out (the inputs ``x`` are not needed)."""
    return functional.cross_entropy(output, y)


def adam(model: nn.Module, lr: float = 2e-3) -> torch.optim.Optimizer:
    """Adam over every parameter of the model."""
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
               x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One healthy step: train mode, clear old gradients, forward, backward, update."""
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Healthy prediction: eval mode (dropout off, normalization from running statistics), no graph."""
    model.eval()
    return model(x)


@dataclass(frozen=True)
class Pipeline:
    """Everything that decides a training run, one field per place a bug can hide.

    ``data`` is the prepared data (preparation already applied); ``metric_mask(x)``, for sequence data,
    marks the positions that count in metrics; ``pad_id`` is the padding token of sequence data.
    """

    name: str
    data: Splits
    build_model: Callable[[], nn.Module]
    loss: LossFn = cross_entropy
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer] = adam
    train_step: Callable[..., torch.Tensor] = train_step
    predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] = predict
    batch_size: int = 128
    seed: int = 0
    pad_id: int | None = None
    metric_mask: Callable[[torch.Tensor], torch.Tensor] | None = None

    def fresh_model(self) -> nn.Module:
        """A newly initialised model on the data's device (the same weights for the same seed)."""
        torch.manual_seed(self.seed)
        return self.build_model().to(self.data.x_train.device)

    def batch(self, size: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` training examples starting at ``offset``: a fixed batch for the probes."""
        return self.data.x_train[offset:offset + size], self.data.y_train[offset:offset + size]

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        """The pipeline's own training step with the pipeline's own loss."""
        return self.train_step(model, optimizer, self.loss, x, y)


def classifier(name: str, data: Splits, seed: int = 0, width: int = 128) -> Pipeline:
    """The healthy classifier: an MLP with two hidden layers, BatchNorm and dropout 0.1, Adam at 2e-3."""
    check_int("width", width, 1, 4096)
    return Pipeline(name, data, lambda: mlp(data.n_features, data.n_classes, width, depth=2, norm="batch",
                                            dropout=0.1), seed=seed)


@dataclass
class Run:
    """What one training run recorded, step by step and at each evaluation."""

    model: nn.Module
    losses: list[float] = field(default_factory=list)          # the loss each step reported
    grad_norms: list[float] = field(default_factory=list)      # total gradient norm after each step
    update_ratios: list[float] = field(default_factory=list)   # median over weight matrices of |dW| / |W|
    moved_early: dict[str, bool] = field(default_factory=dict)  # parameter tensor -> changed in EARLY_STEPS
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)


def labelled_positions(pipeline: Pipeline, x: torch.Tensor, output: torch.Tensor,
                       y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and labels of the positions that count: every example, or the masked tokens of a sequence."""
    if pipeline.metric_mask is None:
        return output, y
    mask = pipeline.metric_mask(x)           # (N, T) bool
    return output[mask], y[mask]             # (positions, C), (positions,)


def evaluate(pipeline: Pipeline, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy of the pipeline's own predictions (the metric never uses the pipeline's loss)."""
    logits, labels = labelled_positions(pipeline, x, pipeline.predict(model, x), y)
    return functional.cross_entropy(logits, labels).item(), (logits.argmax(-1) == labels).float().mean().item()


def train(pipeline: Pipeline, steps: int, evaluations: int = 10, progress: Report | None = None) -> Run:
    """Train a fresh model for ``steps`` mini-batch steps; evaluate on validation ``evaluations`` times.

    Batches are drawn without replacement from a permutation renewed every epoch (seeded by the
    pipeline). Evaluation step 0 is measured before training.
    """
    check_int("steps", steps, EARLY_STEPS, 1_000_000)
    check_int("evaluations", evaluations, 1, steps)
    model = pipeline.fresh_model()
    optimizer = pipeline.make_optimizer(model)
    generator = torch.Generator().manual_seed(pipeline.seed)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    eval_at = {round(k * steps / evaluations) for k in range(evaluations + 1)}
    run, n, order = Run(model), len(pipeline.data.y_train), torch.empty(0, dtype=torch.long)
    for step in range(steps + 1):
        if step in eval_at:
            loss, acc = evaluate(pipeline, model, pipeline.data.x_val, pipeline.data.y_val)
            run.eval_steps.append(step)
            run.val_loss.append(loss)
            run.val_acc.append(acc)
            if progress is not None:
                progress(step / steps)
        if step == steps:
            break
        if len(order) < pipeline.batch_size:
            order = torch.randperm(n, generator=generator).to(pipeline.data.x_train.device)
        index, order = order[:pipeline.batch_size], order[pipeline.batch_size:]
        weights = {name: p.detach().clone() for name, p in model.named_parameters() if p.dim() >= 2}
        run.losses.append(pipeline.step(model, optimizer, pipeline.data.x_train[index],
                                        pipeline.data.y_train[index]).item())
        run.grad_norms.append(gradient_norm(model))
        run.update_ratios.append(update_ratio(weights, model))
        if step + 1 == EARLY_STEPS:
            run.moved_early = {name: not torch.equal(start[name], p) for name, p in model.named_parameters()}
    return run


def gradient_norm(model: nn.Module, parameters: list[torch.Tensor] | None = None) -> float:
    """The L2 norm of all gradients together (of ``parameters`` if given; 0 when none holds one; may be inf or nan)."""
    parameters = list(model.parameters()) if parameters is None else parameters
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0


def update_ratio(before: dict[str, torch.Tensor], model: nn.Module) -> float:
    """Largest over weight matrices of ``|W_after - W_before| / |W_before|`` (Karpathy's update-to-weight ratio)."""
    after = dict(model.named_parameters())
    ratios = [(after[name].detach() - w).norm() / w.norm().clamp_min(1e-12) for name, w in before.items()]
    return torch.stack(ratios).max().item() if ratios else 0.0
