"""Tasks: what a network predicts, how it is trained and scored (``TASKS``).

  face   68 landmarks per frame (300VW / synthetic faces). Testing loss (the
         paper's Table 1-2 metric): mean Euclidean distance between predicted and
         true landmarks, in the face crop's isotropically normalised coordinates on
         300VW (our normalisation; synthetic faces: the frame's), over every
         annotated test frame and per 300VW test category (``test_loss_cat1-3``);
         also the inter-ocular normalised error (outer eye corners, points 36 and 45).
         The training loss is the same distance (ours; the paper does not say).
  gesture  one class per video (nvGesture, 25 classes / synthetic gestures, 10 of them).
  action   one class per video (UCF101, 101 classes / synthetic actions, 10 of them),
           two streams: a spatial (RGB) and a temporal (optical flow) network,
           trained separately, fused by averaging their softmax (the paper's setup).
  toy      a milliseconds-long regression for testing the sweep machinery.

Classification (ours where the paper is silent): every time step predicts the
video's class and the training loss is the cross-entropy averaged over steps; a
video's prediction is the softmax averaged over its steps (and, for action, over
the two streams); its testing loss is the cross-entropy of that prediction. The head always has the paper's number of classes; the
synthetic data use the first ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
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
    streams: tuple[str, ...] = ("spatial",)  # one network per stream; two streams are fused


TASKS: Registry[Task] = Registry("task")


def landmark_distance(pred: Tensor, target: Tensor) -> Tensor:
    """(..., 136) -> (..., 68) Euclidean distance per landmark."""
    return (pred.unflatten(-1, (-1, 2)) - target.unflatten(-1, (-1, 2))).norm(dim=-1)


CATEGORIES = (1, 2, 3)  # 300VW's test categories (``Split.groups``)


def face_metrics(pred: Tensor, target: Tensor, mask: Tensor | None = None, groups: Tensor | None = None
                 ) -> dict[str, float]:
    """Mean over the counted frames (``mask``: each of 300VW's annotated test frames once);
    with ``groups``, the testing loss of each 300VW test category too."""
    dist = landmark_distance(pred, target).mean(-1)  # (N, T): mean over the 68 landmarks
    pts = target.unflatten(-1, (-1, 2))
    interocular = (pts[..., 36, :] - pts[..., 45, :]).norm(dim=-1)  # (N, T)
    w = torch.ones_like(dist) if mask is None else mask.to(dist.dtype)
    mean = lambda x, w: ((x * w).sum() / w.sum()).item()  # noqa: E731
    out = {"test_loss": mean(dist, w), "test_nme": mean(dist / interocular, w)}
    if groups is not None:
        for c in CATEGORIES:
            if (groups == c).any():
                out[f"test_loss_cat{c}"] = mean(dist, w * (groups == c)[:, None])
    return out


TASKS.register("face")(Task(
    num_outputs=136, sources=("synthetic_face", "300vw"),
    loss=lambda p, t: landmark_distance(p, t).mean(), metrics=face_metrics,
    metric_names=("test_loss", "test_nme", *(f"test_loss_cat{c}" for c in CATEGORIES)),
    primary="test_loss", mode="min", landmarks=True,
))
def class_loss(pred: Tensor, target: Tensor) -> Tensor:
    """pred (B, T, K) per-step logits (or (B, K)), target (B,) classes -> mean cross-entropy."""
    if pred.dim() == 3:
        target = target[:, None].expand(pred.shape[:2])
    return F.cross_entropy(pred.flatten(0, -2), target.flatten())


def video_probabilities(pred: Tensor) -> Tensor:
    """(N, T, K) logits -> (N, K): the softmax averaged over time steps."""
    return pred.softmax(-1).mean(1)


def _accuracy(probs: Tensor, target: Tensor) -> float:
    return (probs.argmax(-1) == target).float().mean().item()


def _scores(probs: Tensor, target: Tensor) -> dict[str, float]:
    """Accuracy and cross-entropy of (N, K) video probabilities."""
    return {"test_accuracy": _accuracy(probs, target), "test_loss": F.nll_loss(probs.clamp_min(1e-12).log(), target).item()}


def class_metrics(pred: Tensor, target: Tensor, **_) -> dict[str, float]:
    return _scores(video_probabilities(pred), target)


def fused_metrics(preds: dict[str, Tensor], target: Tensor, **_) -> dict[str, float]:
    """Two-stream metrics: each stream's accuracy and the fused (averaged softmax) one."""
    probs = {name: video_probabilities(p) for name, p in preds.items()}
    fused = torch.stack(list(probs.values())).mean(0)
    return {**{f"test_accuracy_{name}": _accuracy(p, target) for name, p in probs.items()}, **_scores(fused, target)}


TASKS.register("gesture")(Task(
    num_outputs=25, sources=("synthetic_gesture", "nvgesture"), loss=class_loss, metrics=class_metrics,
    metric_names=("test_accuracy", "test_loss"), primary="test_accuracy", mode="max",
))
TASKS.register("action")(Task(
    num_outputs=101, sources=("synthetic_action", "ucf101"), loss=class_loss, metrics=fused_metrics,
    metric_names=("test_accuracy", "test_accuracy_spatial", "test_accuracy_temporal", "test_loss"),
    primary="test_accuracy", mode="max", streams=("spatial", "temporal"),
))
TASKS.register("toy")(Task(
    num_outputs=2, sources=("toy",), loss=F.mse_loss,
    metrics=lambda p, t, **_: {"test_loss": F.mse_loss(p, t).item()}, metric_names=("test_loss",),
    primary="test_loss", mode="min",
))

