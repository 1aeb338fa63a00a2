"""One training loop for the whole curriculum: ``fit`` returns a :class:`History`.

Mini-batches are drawn by permuting indices of tensors already on the device (no
DataLoader), which keeps tiny models fast.  Callbacks can stop training early or
record statistics; one progress bar per notebook cell shows how far training is
(silent outside Jupyter and with ``DL_PROGRESS=0``).
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from helpers import progress as cell_progress
from helpers.data import Splits
from helpers.progress import Report
from helpers.validation import check_choice, check_float, check_int

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")


@dataclass
class History:
    """Per-epoch metrics; ``history.val_acc[-1]`` is the last validation accuracy."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    stopped_epoch: int | None = None
    best_epoch: int | None = None
    restored_epoch: int | None = None
    extra: dict[str, list] = field(default_factory=dict)

    def log(self, **values: float) -> None:
        """Append one epoch's values."""
        for key, value in values.items():
            getattr(self, key).append(value)

    def best(self, metric: str = "val_acc") -> float:
        """The best value of ``metric`` (max for accuracies, min for losses)."""
        values = getattr(self, metric)
        return max(values) if metric.endswith("acc") else min(values)

    def at(self, epoch: int) -> dict[str, float]:
        """The metrics logged at ``epoch`` (0 is before training), plus the train/validation accuracy gap."""
        if epoch not in self.epoch:
            raise ValueError(f"epoch must be one of the logged epochs 0..{self.epoch[-1]}, got {epoch}")
        i = self.epoch.index(epoch)
        return {"epoch": epoch, "train_loss": self.train_loss[i], "train_acc": self.train_acc[i],
                "val_loss": self.val_loss[i], "val_acc": self.val_acc[i],
                "gap": self.train_acc[i] - self.val_acc[i]}

    def final(self) -> dict[str, float]:
        """The last epoch's metrics, plus the train/validation accuracy gap."""
        return self.at(self.epoch[-1])

    def restored(self) -> dict[str, float]:
        """The metrics of the weights the model holds after training: the best epoch's when early
        stopping restored them, else the last epoch's."""
        return self.final() if self.restored_epoch is None else self.at(self.restored_epoch)


class Callback:
    """Hooks into ``fit``: override what you need; ``on_epoch_end`` returns True to stop."""

    def on_train_begin(self, model: nn.Module) -> None:  # noqa: D102
        pass

    def on_after_backward(self, model: nn.Module, step: int) -> None:  # noqa: D102
        pass

    def on_epoch_end(self, model: nn.Module, history: History) -> bool:  # noqa: D102
        return False

    def on_train_end(self, model: nn.Module, history: History) -> None:  # noqa: D102
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights."""

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        self.monitor = check_choice("monitor", monitor, ("val_loss", "val_acc", "train_loss", "train_acc"))
        self.patience = check_int("patience", patience, 1, 10_000)
        self.min_delta = check_float("min_delta", min_delta, 0.0, 1e6)
        self.restore_best = restore_best
        self.sign = 1.0 if monitor.endswith("acc") else -1.0

    def on_train_begin(self, model: nn.Module) -> None:
        self.best_score, self.best_epoch, self.wait, self.best_state = -math.inf, -1, 0, None

    def on_epoch_end(self, model: nn.Module, history: History) -> bool:
        score = self.sign * getattr(history, self.monitor)[-1]
        if score > self.best_score + self.min_delta:
            self.best_score, self.best_epoch, self.wait = score, history.epoch[-1], 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_train_end(self, model: nn.Module, history: History) -> None:
        history.best_epoch = self.best_epoch
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
            history.restored_epoch = self.best_epoch


class GradientStats(Callback):
    """Record the gradient norm of every parameter tensor after each backward pass.

    ``every`` thins the record to one step in ``every``; results land in
    ``history.extra['grad_norm'][name]`` at the end of training.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = check_int("every", every, 1, 1_000_000)
        self.norms: dict[str, list[float]] = {}

    def on_train_begin(self, model: nn.Module) -> None:
        self.norms = {name: [] for name, p in model.named_parameters() if p.requires_grad}

    def on_after_backward(self, model: nn.Module, step: int) -> None:
        if step % self.every:
            return
        for name, p in model.named_parameters():
            if p.grad is not None and name in self.norms:
                self.norms[name].append(p.grad.detach().norm().item())

    def on_train_end(self, model: nn.Module, history: History) -> None:
        history.extra["grad_norm"] = self.norms


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay for weight matrices and kernels only; none for biases and normalization gains.

    Decaying a bias or a LayerNorm/BatchNorm gain pulls it towards zero, which only shifts or silences
    units; the usual practice (and the AdamW paper's) is to decay the tensors with two or more dimensions.
    """
    check_float("weight_decay", weight_decay, 0.0, 100.0)
    decayed = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    kept = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}]


def make_optimizer(name: str, params: nn.Module | Iterable[torch.nn.Parameter], lr: float,
                   weight_decay: float = 0.0, momentum: float = 0.9, beta2: float = 0.999,
                   library=torch.optim) -> torch.optim.Optimizer:
    """An optimizer by name: sgd, momentum, nesterov, rmsprop, adam or adamw.

    ``momentum`` is SGD's momentum and Adam's beta1; ``beta2`` is Adam's beta2 and RMSprop's alpha.
    Given a model, weight decay skips biases and normalization gains (:func:`parameter_groups`).
    ``library`` is any module with ``SGD``, ``RMSprop``, ``Adam`` and ``AdamW`` classes that take
    ``torch.optim``'s arguments: ``torch.optim`` itself, or optimizers written from scratch.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    check_float("lr", lr, 0.0, 100.0, lo_open=True)
    check_float("weight_decay", weight_decay, 0.0, 100.0)
    check_float("momentum", momentum, 0.0, 1.0, hi_open=True)
    check_float("beta2", beta2, 0.0, 1.0, hi_open=True)
    groups = parameter_groups(params, weight_decay) if isinstance(params, nn.Module) else params
    if name in ("sgd", "momentum", "nesterov"):
        return library.SGD(groups, lr=lr, momentum=0.0 if name == "sgd" else momentum,
                           nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "rmsprop":
        return library.RMSprop(groups, lr=lr, alpha=beta2, weight_decay=weight_decay)
    optimizer_class = library.Adam if name == "adam" else library.AdamW
    return optimizer_class(groups, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)


def sampled_steps(model: nn.Module, optimizer: torch.optim.Optimizer, split: Splits, steps: int, batch_size: int,
                  generator: torch.Generator, progress: Report | None = None,
                  after_step: Callable[[int], bool] | None = None) -> None:
    """Cross-entropy on ``steps`` mini-batches drawn with replacement from the training set: the same budget
    at any data size. ``after_step(steps_done)`` runs after each step; returning True stops training."""
    n = len(split.y_train)
    for step in cell_progress.steps(steps, progress):
        index = torch.randint(0, n, (batch_size,), generator=generator).to(split.x_train.device)  # (batch,)
        loss = nn.functional.cross_entropy(model(split.x_train[index]), split.y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None and after_step(step + 1):
            return


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None = None,
             batch_size: int = 4096) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode (mode restored after)."""
    check_int("batch_size", batch_size, 1, 10_000_000)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        total_loss += loss_fn(logits, target).item() * len(target)
        correct += (logits.argmax(-1) == target).sum().item()
    model.train(was_training)
    return total_loss / max(len(y), 1), correct / max(len(y), 1)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode (mode restored after)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def fit(model: nn.Module, data: Splits, epochs: int = 20, lr: float = 1e-3, optimizer: str = "adam",
        batch_size: int = 128, weight_decay: float = 0.0, loss_fn: LossFn | None = None,
        train_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        callbacks: Iterable[Callback] = (), scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
        opt: torch.optim.Optimizer | None = None, eval_loss_fn: LossFn | None = None,
        progress: bool | Report | None = None, seed: int | None = None) -> History:
    """Train ``model`` on ``data.x_train`` and return per-epoch train/validation metrics.

    * Row 0 of the history is measured before the first step, so every learning curve starts at
      initialisation (an untrained 10-class classifier should sit near ln 10 = 2.30 nats).
    * ``optimizer``/``lr``/``weight_decay`` build an optimizer with :func:`make_optimizer` (weight
      decay skips biases and normalization gains), or pass ``opt``.
    * ``loss_fn`` is the training loss (default cross-entropy); metrics use ``eval_loss_fn``
      (default cross-entropy, i.e. NLL of the softmax), so smoothed or mixed losses still
      report comparable validation NLL.
    * ``train_transform(x, y)`` augments each mini-batch (mixup, shifts, ...).
    * ``scheduler(opt)`` returns a ``torch.optim.lr_scheduler`` stepped once per batch.
    * Train metrics are measured in eval mode on the whole training split after each epoch.
    * ``progress``: None shows the cell's progress bar in Jupyter (see :mod:`helpers.progress`),
      False shows nothing, and a callable receives the fraction of epochs done after each epoch.
    """
    check_int("epochs", epochs, 1, 100_000)
    check_int("batch_size", batch_size, 1, 10_000_000)
    device = data.x_train.device
    model.to(device)
    opt = opt or make_optimizer(optimizer, model, lr, weight_decay)
    sched = scheduler(opt) if scheduler else None
    loss_fn = loss_fn or nn.functional.cross_entropy
    eval_loss_fn = eval_loss_fn or nn.functional.cross_entropy
    callbacks = list(callbacks)
    generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    history, n, step = History(), len(data.y_train), 0
    report = progress if callable(progress) else None
    bar = cell_progress.cell_bar() if progress is None or progress is True else None
    if bar is not None:
        bar.start_run(f"training {epochs} epochs")
    start = time.perf_counter()

    def log_epoch(epoch: int) -> float:
        train_loss, train_acc = evaluate(model, data.x_train, data.y_train, eval_loss_fn)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, eval_loss_fn)
        history.log(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                    val_acc=val_acc, seconds=time.perf_counter() - start, lr=opt.param_groups[0]["lr"])
        if bar is not None:
            bar.update(epoch / epochs, f"epoch {epoch}/{epochs} · validation accuracy {val_acc:.3f}",
                       force=epoch == epochs)
        if report is not None:
            report(epoch / epochs)
        return train_loss

    for cb in callbacks:
        cb.on_train_begin(model)
    log_epoch(0)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = data.x_train[idx], data.y_train[idx]
            if train_transform is not None:
                xb, yb = train_transform(xb, yb)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for cb in callbacks:
                cb.on_after_backward(model, step)
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
        train_loss = log_epoch(epoch)
        stop = any([cb.on_epoch_end(model, history) for cb in callbacks])
        if stop or not math.isfinite(train_loss):
            history.stopped_epoch = epoch
            break
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history
