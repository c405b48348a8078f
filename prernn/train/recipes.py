"""Optimiser and learning-rate schedules by name (``SCHEDULES``).

The paper's recipe: SGD, momentum 0.9, weight decay 5e-4 (all configurable).
  step      multiply the lr by ``gamma`` at each of ``milestones`` (epochs).
            Face, paper: base lr 1e-4, halved at epochs 10, 15, 20, 25 of 30.
  every     multiply the lr by ``gamma`` every ``every`` epochs.
            Action, paper: spatial 3e-3 / temporal 1e-2, halved every 10 epochs (90 / 100 epochs).
  plateau   multiply the lr by ``gamma`` when the training loss has not improved for
            ``patience`` epochs; training stops once the lr falls to ``min_lr``.
            Gesture, paper: 3e-2, divided by 10 after 40 epochs without improvement, stop at 3e-7.
  constant  no schedule (tests, toy runs).

A schedule is stepped once per epoch with that epoch's training loss.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry

SCHEDULES: Registry[Callable[..., torch.optim.lr_scheduler.LRScheduler]] = Registry("lr schedule")


@SCHEDULES.register("step")
def step(opt, milestones=(), gamma=0.5, **_):
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)


@SCHEDULES.register("every")
def every(opt, every=10, gamma=0.5, **_):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=gamma)


@SCHEDULES.register("plateau")
def plateau(opt, patience=40, gamma=0.1, **_):
    # torch reduces after patience + 1 epochs without improvement; the paper's rule is "after
    # `patience` epochs without improvement". threshold 0: any decrease counts as improvement.
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=gamma, patience=max(0, patience - 1),
                                                      threshold=0.0)


def step_schedule(sched, train_loss: float) -> None:
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(train_loss)
    else:
        sched.step()


@SCHEDULES.register("constant")
def constant(opt, **_):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


def make_optimizer(net: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    """SGD over the trainable parameters: fused (one kernel for all of them) where they sit on a
    GPU, where the default path launches several per parameter - 628 M of them in a paper-profile
    network; on the CPU the default path, so that the CPU's numbers do not move."""
    params = [p for p in net.parameters() if p.requires_grad]
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)
