"""One epoch of training and one evaluation, over in-memory sequence data, on a trial's
device and in its precision (``prernn.train.device.Placement``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import Split, to_input
from ..data.augment import augment as augment_sequence
from ..tasks import Task
from .device import Placement

CPU = Placement(torch.device("cpu"))


class Diverged(FloatingPointError):
    """The training loss or a metric became NaN or infinite."""


def _augmented(frames, targets, task: Task, generator: torch.Generator):
    pairs = [augment_sequence(f, t if task.landmarks else None, generator) for f, t in zip(frames, targets)]
    frames = torch.stack([f for f, _ in pairs])
    return frames, (torch.stack([t for _, t in pairs]) if task.landmarks else targets)


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: Split, task: Task,
                batch_size: int, generator: torch.Generator, augment: bool = False,
                place: Placement = CPU, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over ``data`` in an order drawn from ``generator`` (on the CPU, so the
    order is the same on every device); returns the mean training loss."""
    net.train()
    order = torch.randperm(len(data), generator=generator)
    total, seen = 0.0, 0
    for i in range(0, len(data), batch_size):
        idx = order[i:i + batch_size]
        frames, targets = data.frames[idx], data.targets[idx]
        if augment:
            frames, targets = _augmented(frames, targets, task, generator)
        x = to_input(place.batch(frames), task.channels)  # uint8 travels, the float copy is made there
        targets = targets.to(place.device, non_blocking=True)
        with place.autocast():
            pred = net(x)
        loss = task.loss(pred.float(), targets)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss is {loss.item()} at batch {i // batch_size}")
        opt.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / seen


@torch.no_grad()
def predict(net: nn.Module, data: Split, task: Task, batch_size: int, place: Placement = CPU) -> torch.Tensor:
    """The network's outputs on every sequence, (N, T, num_outputs), float32 on the CPU."""
    net.eval()
    out = []
    for i in range(0, len(data), batch_size):
        x = to_input(place.batch(data.frames[i:i + batch_size]), task.channels)
        with place.autocast():
            out.append(net(x).float().cpu())
    return torch.cat(out)


def evaluate_predictions(task: Task, preds: dict[str, torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
    """Task metrics of one stream's predictions, or of several streams' fused."""
    metrics = task.metrics(preds if len(preds) > 1 else next(iter(preds.values())), targets)
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise Diverged(f"metrics not finite: {bad}")
    return metrics
