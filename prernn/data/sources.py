"""Registered synthetic sources: the mini datasets, and a toy one for tests of the sweep machinery."""

from __future__ import annotations

import functools

import torch

from . import SOURCES, Split
from .synthetic_face import make_videos
from .synthetic_motion import action_videos, gesture_mirror, gesture_videos

# sources generated from a seed: no data.root, and a number of videos rather than "every video"
GENERATED = ("synthetic_face", "synthetic_gesture", "synthetic_action", "toy")
# the test split uses a seed far from any training seed, so the two never share a video
TEST_SEED_OFFSET = 1_000_003


def _seed(split: str, seed: int) -> int:
    return seed + (TEST_SEED_OFFSET if split == "test" else 0)


def _check(source: str, videos, root) -> None:
    if root is not None:
        raise ValueError(f"data source {source!r} is generated from its seed; it takes no data.root")
    if videos is None:
        raise ValueError(f"data source {source!r} is generated: give a number of videos, not null (all)")


@SOURCES.register("synthetic_face")
@functools.lru_cache(maxsize=8)
def synthetic_face(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None, **_) -> Split:
    """Synthetic 68-landmark face video (ours; see ``synthetic_face.py``).
    Targets: (N, T, 136) landmarks (x0, y0, x1, y1, ...) normalised by the frame size."""
    _check("synthetic_face", videos, root)
    video, marks = make_videos(videos, frames, size, _seed(split, seed))
    frames_t = torch.from_numpy(video).unsqueeze(2)  # (N, T, 1, H, W)
    targets = torch.from_numpy(marks / size).flatten(2).float()
    return Split(frames_t, targets)


@SOURCES.register("synthetic_gesture")
@functools.lru_cache(maxsize=8)
def synthetic_gesture(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None,
                      clip_frames: int = 16, **_) -> Split:
    """Synthetic hand gestures (ours; see ``synthetic_motion.py``): ``frames`` grey clips of
    ``clip_frames`` frames per video, one of 10 classes per video. Left and right, clockwise
    and counter-clockwise strokes swap under a flip: so do their classes (``Split.mirror``)."""
    _check("synthetic_gesture", videos, root)
    clips, labels = gesture_videos(videos, frames, clip_frames, size, _seed(split, seed))
    return Split(torch.from_numpy(clips), torch.from_numpy(labels), mirror=gesture_mirror())


@SOURCES.register("synthetic_action")
@functools.lru_cache(maxsize=8)
def synthetic_action(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None,
                     flow_stack: int = 10, **_) -> Split:
    """Synthetic two-stream actions (ours; see ``synthetic_motion.py``): ``frames`` RGB steps
    per video, each with ``flow_stack`` exact flow fields; one of 10 classes per video (each
    motion runs either way at random, so a flip keeps the class)."""
    _check("synthetic_action", videos, root)
    rgb, flow, labels = action_videos(videos, frames, flow_stack, size, _seed(split, seed))
    return Split(torch.from_numpy(rgb), torch.from_numpy(labels), torch.from_numpy(flow))


@SOURCES.register("toy")
@functools.lru_cache(maxsize=8)
def toy(split: str, videos: int, frames: int, size: int, seed: int, root: str | None = None, **_) -> Split:
    """Random 8-bit noise video whose per-step target is the running mean brightness:
    milliseconds to train, for testing backends, the store and failure handling."""
    _check("toy", videos, root)
    g = torch.Generator().manual_seed(_seed(split, seed))
    x = torch.randint(0, 256, (videos, frames, 1, size, size), generator=g, dtype=torch.uint8)
    mean = x.float().mean((2, 3, 4)) / 255
    running = mean.cumsum(1) / torch.arange(1, frames + 1)
    return Split(x, torch.stack([mean, running], -1))
