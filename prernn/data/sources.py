"""Registered data sources: the synthetic mini datasets and a toy one for tests of the sweep machinery."""

from __future__ import annotations

import functools

import torch

from . import SOURCES, Split
from .synthetic_face import make_videos

# the test split uses a seed far from any training seed, so the two never share a video
TEST_SEED_OFFSET = 1_000_003


@SOURCES.register("synthetic_face")
@functools.lru_cache(maxsize=8)
def synthetic_face(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None) -> Split:
    """Synthetic 68-landmark face video (ours; see ``synthetic_face.py``).
    Targets: (N, T, 136) landmarks (x0, y0, x1, y1, ...) normalised by the frame size."""
    _no_root("synthetic_face", root)
    video, marks = make_videos(videos, frames, size, seed + (TEST_SEED_OFFSET if split == "test" else 0))
    frames_t = torch.from_numpy(video).unsqueeze(2)  # (N, T, 1, H, W)
    targets = torch.from_numpy(marks / size).flatten(2).float()
    return Split(frames_t, targets)


@SOURCES.register("toy")
@functools.lru_cache(maxsize=8)
def toy(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None) -> Split:
    """Random 8-bit noise video whose per-step target is the running mean brightness:
    milliseconds to train, for testing backends, the store and failure handling."""
    _no_root("toy", root)
    g = torch.Generator().manual_seed(seed + (TEST_SEED_OFFSET if split == "test" else 0))
    x = torch.randint(0, 256, (videos, frames, 1, size, size), generator=g, dtype=torch.uint8)
    mean = x.float().mean((2, 3, 4)) / 255
    running = mean.cumsum(1) / torch.arange(1, frames + 1)
    return Split(x, torch.stack([mean, running], -1))


def _no_root(source: str, root) -> None:
    if root is not None:
        raise ValueError(f"data source {source!r} is generated from its seed; it takes no data.root")
