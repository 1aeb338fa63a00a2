"""Small, fast pipelines for the tests of the debugging science (a few hundred examples, a tiny MLP)."""
from __future__ import annotations

from dataclasses import replace

import torch

from helpers.data import Splits
from helpers.models import mlp
from helpers.scratch.pipeline import Pipeline


def blobs(n: int = 320, features: int = 6, classes: int = 3, seed: int = 0) -> Splits:
    """Gaussian clusters, one per class, split 200/60/60."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, features, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    x = centres[y] + torch.randn(n, features, generator=generator)
    return Splits("blobs", x[:200], y[:200], x[200:260], y[200:260], x[260:], y[260:], classes)


def tiny(**changes) -> Pipeline:
    """A healthy classifier on :func:`blobs` (MLP 2 x 16 with BatchNorm and dropout), with fields replaced."""
    data = blobs()
    pipeline = Pipeline("tiny", data, lambda: mlp(data.n_features, data.n_classes, 16, 2, norm="batch", dropout=0.1),
                        batch_size=32)
    return replace(pipeline, **changes)


def no_zero_grad(model, optimizer, loss_fn, x, y):
    """A planted bug for the tests: a training step that never clears the old gradients."""
    model.train()
    loss = loss_fn(model(x), x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()
