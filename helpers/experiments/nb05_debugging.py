"""Notebook 05: healthy pipelines, every planted bug by name, the diagnosis gallery, its explorer and checkers.

The science lives in :mod:`helpers.scratch`: the pipeline and its training loop (``pipeline``), the
checks (``training_checks``, ``split_audit``), the ordered checklist (``diagnose``), the data faults
(``data_faults``) and the padded tagging task (``masking``). This module only assembles them.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from helpers import data as datasets
from helpers import plotting
from helpers.exercises import NOT_ATTEMPTED, attempt, correct, wrong
from helpers.models import mlp
from helpers.progress import Report as ProgressReport
from helpers.progress import share
from helpers.scratch import data_faults, masking, training_checks
from helpers.scratch.diagnose import STEPS, Report, diagnose
from helpers.scratch.pipeline import Pipeline, Run, adam, classifier, train
from helpers.validation import check_choice

HEALTHY_LR = 2e-3
TAGGER_LR = 1e-2
STARVED_CLASS = 0


# ---- healthy pipelines -------------------------------------------------------------------------

def masked_loss(output: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The tagger's healthy loss: mean cross-entropy over the real tokens (end token included)."""
    return masking.masked_cross_entropy(output, y, masking.real_tokens(x))


def healthy(base: str, seed: int = 0) -> Pipeline:
    """The healthy pipeline ``mnist1d``, ``digits`` or ``tagging`` for one seed."""
    check_choice("base", base, BASES)
    if base == "mnist1d":
        return classifier("MNIST-1D", datasets.mnist1d(seed=seed), seed)
    if base == "digits":
        return classifier("digits", datasets.digits(seed=seed), seed)
    from helpers import config

    return Pipeline("tagging", masking.tagging_splits(seed=seed, device=config.device()), masking.CausalTagger,
                    loss=masked_loss, make_optimizer=lambda model: adam(model, TAGGER_LR), batch_size=32, seed=seed,
                    pad_id=masking.EOS, metric_mask=masking.real_tokens)


BASES = ("mnist1d", "digits", "tagging")


# ---- the planted bugs --------------------------------------------------------------------------

def softmax_then_cross_entropy(output: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bug: probabilities passed where ``cross_entropy`` expects logits (it applies log-softmax again)."""
    return functional.cross_entropy(functional.softmax(output, dim=-1), y)


def step_without_zero_grad(model, optimizer, loss_fn, x, y) -> torch.Tensor:
    """Bug: a training step that never clears the previous gradients, so they pile up."""
    model.train()
    loss = loss_fn(model(x), x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def step_in_whatever_mode(model, optimizer, loss_fn, x, y) -> torch.Tensor:
    """Bug: a training step that never calls ``model.train()``: after an evaluation it trains in eval mode."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def predict_in_train_mode(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Bug: prediction without ``model.eval()``: dropout stays on and BatchNorm uses the batch's statistics."""
    return model(x)


class Detached(nn.Module):
    """Bug: a layer whose output is cut from the graph (``.detach()``), so nothing before it learns."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).detach()


class ColumnLinear(nn.Module):
    """A linear layer computed as ``W @ x.T`` (units by examples) and turned back to examples by units.

    ``mix_batch=True`` plants the bug: ``reshape`` where a transpose was meant. The shape is right,
    so nothing complains, but every row now holds pieces of several examples.
    """

    def __init__(self, linear: nn.Linear, mix_batch: bool) -> None:
        super().__init__()
        self.linear, self.mix_batch = linear, mix_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.linear.weight @ x.T + self.linear.bias[:, None]        # (units, B)
        return columns.reshape(len(x), -1) if self.mix_batch else columns.T  # (B, units)


def with_first_layer(pipeline: Pipeline, change: Callable[[nn.Module], None]) -> Pipeline:
    """The pipeline with ``change`` applied to each new model's first block."""
    def build() -> nn.Module:
        model = pipeline.build_model()
        change(model.blocks[0])
        return model
    return replace(pipeline, build_model=build)


def class_weighted(pipeline: Pipeline) -> Pipeline:
    """Bug: a class starved to 3 examples, and inverse-frequency class weights that try to make up for it."""
    starved = data_faults.starve_class(pipeline.data, STARVED_CLASS)
    counts = torch.bincount(starved.y_train, minlength=starved.n_classes).float()
    weights = len(starved.y_train) / (starved.n_classes * counts)
    return replace(pipeline, data=starved,
                   loss=lambda output, x, y: functional.cross_entropy(output, y, weight=weights))


def unscaled_pixels(pipeline: Pipeline) -> Pipeline:
    """Bug: digits as 0-255 pixel values, never scaled or standardized."""
    raw = datasets.digits(seed=pipeline.seed, standardize=False)
    scale = 255.0 / 16.0
    return replace(pipeline, data=replace(raw, x_train=raw.x_train * scale, x_val=raw.x_val * scale,
                                          x_test=raw.x_test * scale))


def raw_validation(pipeline: Pipeline) -> Pipeline:
    """Bug: training inputs standardized, validation inputs fed raw."""
    raw = datasets.digits(seed=pipeline.seed, standardize=False)
    return replace(pipeline, data=replace(pipeline.data, x_val=raw.x_val))


def tagging_loss(mask: Callable[[torch.Tensor], torch.Tensor], per_element: bool = False):
    """A tagger loss over ``mask(x)``; ``per_element`` divides by every position instead of the mask's sum."""
    def loss(output: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not per_element:
            return masking.masked_cross_entropy(output, y, mask(x))
        per_token = functional.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="none")
        return (per_token * mask(x).flatten()).sum() / per_token.numel()
    return loss


def every_position(x: torch.Tensor) -> torch.Tensor:
    """Bug: a "mask" that keeps padding too."""
    return torch.ones_like(x, dtype=torch.bool)


@dataclass(frozen=True)
class Bug:
    """A bug planted by name: the pipeline it goes into, the part it lives in, and the checklist step whose check
    is built to catch it (not always the step of its part: a frozen model tensor is caught at "model mode")."""

    title: str
    base: str
    part: str
    step: int
    plant: Callable[[Pipeline], Pipeline]
    validation_only: bool = False     # the training data and parts are untouched: the healthy run can be reused


BUGS = {
    "shuffled labels": Bug("labels shuffled against inputs", "mnist1d", "data", 1,
                           lambda p: replace(p, data=data_faults.shuffle_labels(p.data, p.seed))),
    "softmax before cross-entropy": Bug("softmax applied before cross_entropy", "mnist1d", "loss", 2,
                                        lambda p: replace(p, loss=softmax_then_cross_entropy)),
    "exploding class weights": Bug("inverse-frequency weights for a class of 3", "mnist1d", "loss", 2, class_weighted),
    "masked loss divided by numel": Bug("mask sum replaced by numel", "tagging", "loss", 2,
                                        lambda p: replace(p, loss=tagging_loss(masking.real_tokens, True))),
    "learning rate x100": Bug("Adam at 0.2", "mnist1d", "optimizer", 3,
                              lambda p: replace(p, make_optimizer=lambda m: adam(m, HEALTHY_LR * 100))),
    "learning rate /1000": Bug("Adam at 2e-6", "mnist1d", "optimizer", 3,
                               lambda p: replace(p, make_optimizer=lambda m: adam(m, HEALTHY_LR / 1000))),
    "missing zero_grad": Bug("gradients never cleared", "mnist1d", "training step", 4,
                             lambda p: replace(p, train_step=step_without_zero_grad)),
    "first layer detached": Bug("first layer's output detached", "mnist1d", "model", 4,
                                lambda p: with_first_layer(p, lambda block: setattr(block, "linear",
                                                                                    Detached(block.linear)))),
    "reshape mixes the batch": Bug("reshape where a transpose was meant", "mnist1d", "model", 4,
                                   lambda p: with_first_layer(p, lambda block: setattr(
                                       block, "linear", ColumnLinear(block.linear, mix_batch=True)))),
    "eval mode in training": Bug("model.train() never called again", "mnist1d", "training step", 5,
                                 lambda p: replace(p, train_step=step_in_whatever_mode)),
    "train mode at evaluation": Bug("model.eval() missing in predict", "mnist1d", "prediction", 5,
                                    lambda p: replace(p, predict=predict_in_train_mode)),
    "optimizer given only the head": Bug("optimizer built on model.head", "mnist1d", "optimizer", 5,
                                         lambda p: replace(p, make_optimizer=lambda m: adam(m.head))),
    "first layer frozen": Bug("requires_grad=False on the first layer", "mnist1d", "model", 5,
                              lambda p: with_first_layer(p, lambda block: block.requires_grad_(False))),
    "unscaled 0-255 pixels": Bug("pixels never scaled", "digits", "data", 7, unscaled_pixels),
    "raw validation inputs": Bug("validation not standardized", "digits", "data", 7, raw_validation,
                                 validation_only=True),
    "pads counted in the loss": Bug("loss averaged over every position", "tagging", "loss", 2,
                                    lambda p: replace(p, loss=tagging_loss(every_position))),
    "mask drops end tokens": Bug("mask built as x != pad_id", "tagging", "loss", 8,
                                 lambda p: replace(p, loss=tagging_loss(lambda x: x != masking.EOS))),
    "near-duplicate leak": Bug("30% of validation copied from training", "mnist1d", "split", 8,
                               lambda p: replace(p, data=data_faults.leak_near_duplicates(p.data, 0.3, seed=p.seed)),
                               validation_only=True),
    "covariate shift": Bug("validation from a noisier sensor", "mnist1d", "split", 8,
                           lambda p: replace(p, data=data_faults.shift_validation(p.data, 1.0, seed=p.seed)),
                           validation_only=True),
    "starved class": Bug("one class cut to 3 examples", "mnist1d", "split", 8,
                         lambda p: replace(p, data=data_faults.starve_class(p.data, STARVED_CLASS))),
}


def plain_sgd(pipeline: Pipeline, lr: float = 0.1) -> Pipeline:
    """The same data through an MLP without BatchNorm or dropout, trained by plain SGD: nothing absorbs bad scale."""
    data = pipeline.data
    return replace(pipeline, build_model=lambda: mlp(data.n_features, data.n_classes, 128, 2),
                   make_optimizer=lambda model: torch.optim.SGD(model.parameters(), lr=lr))


def planted(name: str, seed: int = 0, base: Pipeline | None = None) -> Pipeline:
    """The healthy pipeline with the bug ``name`` planted (pass ``base`` to reuse an already built one)."""
    check_choice("name", name, BUGS)
    bug = BUGS[name]
    pipeline = bug.plant(base if base is not None else healthy(bug.base, seed))
    return replace(pipeline, name=name)


# ---- the gallery, its explorer and the exercise checkers ---------------------------------------

HEALTHY = {"healthy MNIST-1D": "mnist1d", "healthy digits": "digits", "healthy digits, plain SGD": "digits",
           "healthy tagging": "tagging"}
CHOICES = (*HEALTHY, *BUGS)


def pipeline_named(name: str, seed: int = 0, bases: Mapping[str, Pipeline] | None = None) -> Pipeline:
    """A healthy pipeline (``"healthy MNIST-1D"``, ...) or a planted bug by name; ``bases`` reuses built ones."""
    check_choice("name", name, CHOICES)
    base = HEALTHY[name] if name in HEALTHY else BUGS[name].base
    pipeline = bases[base] if bases is not None else healthy(base, seed)
    if name not in HEALTHY:
        return planted(name, seed, pipeline)
    return replace(plain_sgd(pipeline) if name.endswith("plain SGD") else pipeline, name=name)


def gallery(seed: int = 0, steps: int = 200, overfit_steps: int = 100, done: Mapping[str, Report] | None = None,
            progress: ProgressReport | None = None) -> dict[str, Report]:
    """``diagnose`` every healthy pipeline and every planted bug: one report each, in :data:`CHOICES` order.

    ``done`` holds reports already computed (they are kept); a bug that only touches validation reuses its
    healthy pipeline's training run, since it trains exactly the same model."""
    from helpers import progress as cell_progress

    bar = cell_progress.cell_bar() if progress is None else None
    if bar is not None:
        bar.start_run(f"diagnosing {len(CHOICES)} pipelines")
    bases = {base: healthy(base, seed) for base in BASES}
    reports = dict(done or {})
    healthy_of = {base: name for name, base in HEALTHY.items()}
    for i, name in enumerate(CHOICES):
        if bar is not None:
            bar.update(i / len(CHOICES), name, force=True)
        if name in reports:
            continue
        part = share(progress, i / len(CHOICES), (i + 1) / len(CHOICES))
        bug = BUGS.get(name)
        run = reports[healthy_of[bug.base]].run if bug is not None and bug.validation_only else None
        reports[name] = diagnose(pipeline_named(name, seed, bases), steps, overfit_steps, progress=part, run=run)
    if bar is not None:
        bar.update(1.0, "done", force=True)
    return {name: reports[name] for name in CHOICES}


def scale_without_normalization(seed: int = 0, steps: int = 200, healthy_run: Run | None = None) -> list[dict]:
    """Standardized and 0-255 digits through :func:`plain_sgd`: loss at init and validation accuracy.

    ``healthy_run`` reuses a finished training run of the standardized pipeline (``"healthy digits, plain SGD"``)."""
    rows = []
    for name in ("healthy digits", "unscaled 0-255 pixels"):
        pipeline = plain_sgd(pipeline_named(name, seed))
        x, y = pipeline.batch(512)
        run = healthy_run if healthy_run is not None and name == "healthy digits" else train(pipeline, steps)
        rows.append({"pixels": "standardized" if name == "healthy digits" else "0-255",
                     "model": "MLP, no normalization, SGD",
                     "loss at init / ln C": training_checks.loss_at_init(pipeline, x, y) / math.log(10),
                     "validation accuracy": run.val_acc[-1]})
    return rows


@torch.no_grad()
def dead_unit_shares(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per hidden layer of an MLP, the share of units that output 0 on every input of ``x`` (in eval mode)."""
    model.eval()
    _, hidden = model.forward_with_hidden(x)                 # one (N, width) tensor per hidden layer
    return [(layer <= 0).all(0).float().mean().item() for layer in hidden]


def curves_figure(report: Report, n_classes: int):
    """Training loss per step (with ln C) and validation accuracy (with chance) of one diagnosed run."""
    fig, (loss_ax, accuracy_ax) = plotting.figure(f"{report.pipeline}: what the curves show", "training step",
                                                  "training loss (nats)", ncols=2)
    losses = np.array(report.run.losses)
    shown = np.clip(np.nan_to_num(losses, nan=np.inf, posinf=1e3), None, 5 * math.log(n_classes))
    loss_ax.plot(np.arange(1, len(losses) + 1), shown, lw=1, label="loss each step reported")
    loss_ax.axhline(math.log(n_classes), color="black", ls=":", lw=1, label="ln C (a uniform guess)")
    loss_ax.set_ylim(0, max(1.2 * math.log(n_classes), float(np.max(shown)) * 1.05))
    loss_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    accuracy_ax.plot(report.run.eval_steps, report.run.val_acc, marker="o", label="validation")
    accuracy_ax.axhline(1 / n_classes, color="black", ls=":", lw=1, label="chance")
    accuracy_ax.set_ylabel("validation accuracy")
    accuracy_ax.set_ylim(0, 1)
    accuracy_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


def explore_bug(bug: str = "shuffled labels", seed: int = 0, steps: int = 200,
                progress: ProgressReport | None = None):
    """Plant one bug (or none), run the ordered checklist, and show the curves and what fired."""
    pipeline = pipeline_named(bug, seed)
    report = diagnose(pipeline, steps, progress=progress)
    first = report.first_failure()
    fired = [f"{f.rule.step}: {f.rule.check}" for f in report.findings if f.passed is False]
    where = "none" if first is None else f"step {first.rule.step} ({STEPS[first.rule.step]}): {first.rule.check}"
    numbers = {"part of the pipeline": "none" if bug in HEALTHY else BUGS[bug].part,
               "validation accuracy": report.extras["val_accuracy"], "first failing check": where,
               "its value": "—" if first is None else first.value,
               "healthy range": "—" if first is None else first.rule.text(),
               "every check that fired": ", ".join(fired) or "none"}
    numbers["note"] = ("Every check passes." if first is None else
                       f"The checklist stops at step {first.rule.step} ({STEPS[first.rule.step]}): "
                       f"{first.rule.check} = {first.value:.3g}, healthy {first.rule.text()}.")
    return curves_figure(report, pipeline.data.n_classes), numbers


def _check_against(fn, cases: Mapping[str, bool], what: str, hint: str, seed: int, success: str) -> bool:
    """Run the learner's check on healthy and planted pipelines and compare with the expected verdicts."""
    for name, expected in cases.items():
        answer = attempt(fn, pipeline_named(name, seed), what=what)
        if answer is NOT_ATTEMPTED:
            return False
        if bool(answer) != expected:
            return wrong(f"on the pipeline '{name}' your check returned {answer!r}; it should return {expected}.", hint)
    return correct(success)


def check_padding_invariance(fn, seed: int = 0) -> bool:
    """Checker: ``fn(pipeline) -> bool`` is True when the pipeline's loss ignores appended padding."""
    cases = {"healthy tagging": True, "pads counted in the loss": False, "masked loss divided by numel": False,
             "mask drops end tokens": True}
    return _check_against(fn, cases, "ignores_padding(pipeline)",
                          "take a fresh model in eval mode and a batch; append columns of pipeline.pad_id to x and "
                          "of 0 to y; compare pipeline.loss before and after (relative change below 1e-4).",
                          seed, "your check passes the healthy tagger and the end-token mask (which does ignore "
                                "padding: that bug needs a per-segment metric) and catches both padding bugs.")


def check_train_mode(fn, seed: int = 0) -> bool:
    """Checker: ``fn(pipeline) -> bool`` is True when the training step runs dropout and BatchNorm in train mode."""
    cases = {"healthy MNIST-1D": True, "eval mode in training": False, "train mode at evaluation": True,
             "healthy digits": True}
    return _check_against(fn, cases, "trains_in_train_mode(pipeline)",
                          "predict once first (as a loop that evaluates does), then register forward pre-hooks on the "
                          "Dropout and BatchNorm1d modules that record module.training, and run pipeline.step once.",
                          seed, "your check catches a training step that never switches back to train mode, and passes "
                                "the pipeline whose bug is in prediction.")
