"""One epoch of training and one evaluation, over in-memory sequence data."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import Split, to_input
from ..data.augment import augment as augment_sequence
from ..tasks import Task


class Diverged(FloatingPointError):
    """The training loss or a metric became NaN or infinite."""


def _augmented(frames, targets, task: Task, generator: torch.Generator):
    pairs = [augment_sequence(f, t if task.landmarks else None, generator) for f, t in zip(frames, targets)]
    frames = torch.stack([f for f, _ in pairs])
    return frames, (torch.stack([t for _, t in pairs]) if task.landmarks else targets)


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: Split, task: Task,
                batch_size: int, generator: torch.Generator, augment: bool = False) -> float:
    net.train()
    order = torch.randperm(len(data), generator=generator)
    total, seen = 0.0, 0
    for i in range(0, len(data), batch_size):
        idx = order[i:i + batch_size]
        frames, targets = data.frames[idx], data.targets[idx]
        if augment:
            frames, targets = _augmented(frames, targets, task, generator)
        pred = net(to_input(frames, task.channels))
        loss = task.loss(pred, targets)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss is {loss.item()} at batch {i // batch_size}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / seen


@torch.no_grad()
def predict(net: nn.Module, data: Split, task: Task, batch_size: int) -> torch.Tensor:
    """The network's outputs on every sequence, (N, T, num_outputs)."""
    net.eval()
    return torch.cat([net(to_input(data.frames[i:i + batch_size], task.channels))
                      for i in range(0, len(data), batch_size)])


def evaluate_predictions(task: Task, preds: dict[str, torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
    """Task metrics of one stream's predictions, or of several streams' fused."""
    metrics = task.metrics(preds if len(preds) > 1 else next(iter(preds.values())), targets)
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise Diverged(f"metrics not finite: {bad}")
    return metrics

