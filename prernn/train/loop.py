"""One epoch of training and one evaluation, over a split's batches (``prernn.data.loader``),
on a trial's device and in its precision (``prernn.train.device.Placement``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import to_input
from ..data.loader import Batches
from ..tasks import Task
from .device import Placement

CPU = Placement(torch.device("cpu"))


class Diverged(FloatingPointError):
    """The training loss or a metric became NaN or infinite."""


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: Batches, task: Task, epoch_seed: int,
                augment: bool = False, place: Placement = CPU, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over ``data`` in an order drawn from ``epoch_seed`` (on the CPU, so the
    order is the same on every device), each sequence augmented from the same seed when
    ``augment``; returns the mean training loss."""
    net.train()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed))
    total, seen = 0.0, 0
    for i, (frames, targets) in enumerate(data.epoch(order, epoch_seed, augment)):
        x = to_input(place.batch(frames), task.channels)  # uint8 travels, the float copy is made there
        targets = targets.to(place.device, non_blocking=True)
        with place.autocast():
            pred = net(x)
        loss = task.loss(pred.float(), targets)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss is {loss.item()} at batch {i}")
        opt.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        total += loss.item() * len(targets)
        seen += len(targets)
    return total / seen


@torch.no_grad()
def predict(net: nn.Module, data: Batches, task: Task, place: Placement = CPU) -> torch.Tensor:
    """The network's outputs on every sequence, (N, T, num_outputs), float32 on the CPU."""
    net.eval()
    out = []
    for frames, _ in data.epoch():
        x = to_input(place.batch(frames), task.channels)
        with place.autocast():
            out.append(net(x).float().cpu())
    return torch.cat(out)


def evaluate_predictions(task: Task, preds: dict[str, torch.Tensor], split) -> dict[str, float]:
    """Task metrics of one stream's predictions on ``split`` (its targets, and which steps count
    in which group), or of several streams' fused."""
    metrics = task.metrics(preds if len(preds) > 1 else next(iter(preds.values())), split.targets,
                           mask=split.mask, groups=split.groups)
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise Diverged(f"metrics not finite: {bad}")
    return metrics
