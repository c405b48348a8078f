"""Optimiser and learning-rate schedules by name (``SCHEDULES``).

The paper's recipe: SGD, momentum 0.9, weight decay 5e-4 (all configurable).
  step      multiply the lr by ``gamma`` at each of ``milestones`` (epochs).
            Face, paper: base lr 1e-4, halved at epochs 10, 15, 20, 25 of 30.
  constant  no schedule (tests, toy runs).
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


@SCHEDULES.register("constant")
def constant(opt, **_):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


def make_optimizer(net: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    params = [p for p in net.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
