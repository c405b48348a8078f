"""Datasets as in-memory sequence tensors, by name (``SOURCES``).

A source is called as ``source(split, videos, frames, size, seed, root=None)`` and
returns ``Split(frames, targets)`` for "train" or "test": frames are uint8
(N, T, C, H, W) - or (N, T, C, L, H, W) clips - and targets float32 (N, T, K)
per-step targets or int64 (N,) per-video classes. ``to_input`` turns frames into
the network's float input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from ..registry import Registry


@dataclass(frozen=True)
class Split:
    frames: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return self.frames.shape[0]


SOURCES: Registry[Callable[..., Split]] = Registry("data source")


def to_input(frames: Tensor, channels: int = 3) -> Tensor:
    """uint8 frames -> float, centred and scaled; grey frames repeated to ``channels``."""
    x = frames.float().div_(255).sub_(0.5).div_(0.25)
    if x.shape[2] == 1 and channels != 1:
        x = x.expand(*x.shape[:2], channels, *x.shape[3:])
    return x


from . import sources, vw300  # noqa: E402,F401  (registers the sources)
