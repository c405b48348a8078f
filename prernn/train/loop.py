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
# steps between two reads of the loss on the host (and at the epoch's end): a read waits for the
# GPU, so reading every step would stop the CPU from queueing the next step's kernels
CHECK_EVERY = 8


class Diverged(FloatingPointError):
    """The training loss or a metric became NaN or infinite."""


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: Batches, task: Task, epoch_seed: int,
                augment: bool = False, place: Placement = CPU, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over ``data`` in an order drawn from ``epoch_seed`` (on the CPU, so the
    order is the same on every device), each sequence augmented from the same seed when
    ``augment``; returns the mean training loss.

    The loss stays on the device: summed there (in float64, as a Python float sum would) and
    checked for NaN/inf every ``CHECK_EVERY`` steps and at the end, so a diverged trial stops
    within the epoch, a few steps after its first bad one, without a host read per step."""
    net.train()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed))
    total = torch.zeros((), dtype=torch.float64, device=place.device)
    first_bad = torch.full((), -1, dtype=torch.int64, device=place.device)  # the first step whose loss was not finite
    seen = 0
    for i, (frames, targets, *drawn) in enumerate(data.epoch(order, epoch_seed, augment)):
        warp = (lambda x, t=drawn[0]: data.augment.warp_batch(x, t)) if drawn else None  # warped after the copy
        x = to_input(place.batch(frames, warp), task.channels)  # uint8 travels, the float copy is made there
        targets = targets.to(place.device, non_blocking=True)
        with place.autocast():
            pred = net(x)
        loss = task.loss(pred.float(), targets)
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), i, first_bad)
        if (i + 1) % CHECK_EVERY == 0:
            _stop_if_diverged(first_bad)
        opt.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        total += loss.detach().double() * len(targets)
        seen += len(targets)
    _stop_if_diverged(first_bad)
    return total.item() / seen


def _stop_if_diverged(first_bad: torch.Tensor) -> None:
    """One host read: raise ``Diverged`` if some step's loss was NaN or infinite."""
    step = int(first_bad)
    if step >= 0:
        raise Diverged(f"training loss is not finite from batch {step} on")


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
