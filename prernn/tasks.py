"""Tasks: what a network predicts, how it is trained and scored (``TASKS``).

  face   68 landmarks per frame (300VW / synthetic faces). Testing loss (the
         paper's Table 1-2 metric): mean Euclidean distance between predicted and
         true landmarks, in frame-size-normalised coordinates (our normalisation);
         also the inter-ocular normalised error (outer eye corners, points 36 and 45).
         The training loss is the same distance (ours; the paper does not say).
  toy    a milliseconds-long regression for testing the sweep machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from .registry import Registry


@dataclass(frozen=True)
class Task:
    num_outputs: int
    sources: tuple[str, ...]  # data sources that provide this task's targets
    loss: Callable[[Tensor, Tensor], Tensor]  # (pred, target) -> scalar training loss
    metrics: Callable[[Tensor, Tensor], dict[str, float]]  # on the whole test set
    metric_names: tuple[str, ...]  # the keys ``metrics`` returns: the store's metric columns
    primary: str  # the metric a sweep reports and an optimiser targets
    mode: str  # "min" or "max" for the primary metric
    channels: int = 3  # network input channels (grey frames are repeated)
    landmarks: bool = False  # targets are (x, y) points in the frame: augmentation moves them too


TASKS: Registry[Task] = Registry("task")


def landmark_distance(pred: Tensor, target: Tensor) -> Tensor:
    """(..., 136) -> (..., 68) Euclidean distance per landmark."""
    return (pred.unflatten(-1, (-1, 2)) - target.unflatten(-1, (-1, 2))).norm(dim=-1)


def face_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    dist = landmark_distance(pred, target)  # (N, T, 68)
    pts = target.unflatten(-1, (-1, 2))
    interocular = (pts[..., 36, :] - pts[..., 45, :]).norm(dim=-1)  # (N, T)
    return {"test_loss": dist.mean().item(), "test_nme": (dist.mean(-1) / interocular).mean().item()}


TASKS.register("face")(Task(
    num_outputs=136, sources=("synthetic_face", "300vw"),
    loss=lambda p, t: landmark_distance(p, t).mean(), metrics=face_metrics, metric_names=("test_loss", "test_nme"),
    primary="test_loss", mode="min", landmarks=True,
))
TASKS.register("toy")(Task(
    num_outputs=2, sources=("toy",), loss=F.mse_loss,
    metrics=lambda p, t: {"test_loss": F.mse_loss(p, t).item()}, metric_names=("test_loss",),
    primary="test_loss", mode="min",
))

