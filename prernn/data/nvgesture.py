"""nvGesture (Molchanov et al. 2016): 25 hand gestures, one class per video.

On disk (the dataset's own layout; ``data.root`` is the folder holding the lists):
``nvgesture_{train,test}_correct_cvpr2016_v2.lst`` (parsed by ``splits.read_nvgesture_list``)
and per video ``<path>/sk_color.avi``, of which frames ``range(start, end)`` (the
list's ``color:`` range, 0-based) show the gesture.

Loading (ours): each video becomes ``frames`` clips of ``clip_frames`` consecutive
frames (C3D's input): for testing spread evenly over the gesture's range (overlapping
when the range is short; a range shorter than one clip repeats its last frame), for
training drawn afresh every epoch, one at random in each of ``frames`` equal segments
of the range (``Split.redraw``). Frames that
do not decode are replaced by the nearest decodable frame of the range, with a
counted warning. Videos are decoded when a batch reads them (``LazyFrames``).

Augmentation never flips an nvGesture video (ours): many of its classes are
directions (move hand left / right, rotate clockwise / counter-clockwise), and the
dataset's files do not say which class index is which direction.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

from . import SOURCES, LazyFrames, Split, sample_indices
from .augment import NO_FLIP
from .frame_cache import file_key
from .splits import NV_CLASSES, NvGestureVideo, read_nvgesture_list
from .video import DataFormatError, decode_video, jittered, nearest, spread

LISTS = {"train": "nvgesture_train_correct_cvpr2016_v2.lst", "test": "nvgesture_test_correct_cvpr2016_v2.lst"}


def load_clips(video: NvGestureVideo, root: Path, starts: list[int], clip_frames: int, size: int) -> np.ndarray:
    """(steps, 3, clip_frames, size, size) uint8: clips at ``starts`` (offsets into the colour
    video's gesture range)."""
    path = video.video(root, "color")
    start, end = video.ranges["color"]
    decoded, _, bad = decode_video(path, size, stop=end)
    good = sorted(i for i in decoded if start <= i < end)
    if not good:
        raise DataFormatError(f"{path}: no decodable frame in the listed colour range {start}:{end}")
    missing = (end - start) - len(good)
    if missing:
        warnings.warn(f"{path}: {missing} of {end - start} frames in {start}:{end} did not decode or are "
                      "missing; used the nearest decodable frame", stacklevel=2)
    clips = []
    for s in starts:
        idx = [nearest(good, min(start + s + j, end - 1)) for j in range(clip_frames)]
        clips.append(np.stack([decoded[i] for i in idx], axis=1))  # (3, L, size, size)
    return np.stack(clips)


@SOURCES.register("nvgesture")
@functools.lru_cache(maxsize=4)
def nvgesture(split: str, videos: int | None, frames: int, size: int, seed: int, root: str | None = None,
              clip_frames: int = 16, **_) -> Split:
    if root is None:
        raise ValueError("data source 'nvgesture' needs data.root: the folder holding "
                         f"{LISTS['train']} and {LISTS['test']}")
    root = Path(root).expanduser()
    listing = root / LISTS[split]
    if not listing.is_file():
        raise FileNotFoundError(f"nvGesture list missing: {listing}")
    entries = read_nvgesture_list(listing)
    if not entries:
        raise DataFormatError(f"{listing}: lists no videos")
    chosen = [entries[i] for i in sample_indices(len(entries), videos, seed)]
    for e in chosen:  # fail now, not in the middle of an epoch
        if not e.video(root).is_file():
            raise FileNotFoundError(f"nvGesture video missing: {e.video(root)} (listed in {listing})")
    targets = torch.tensor([e.label for e in chosen], dtype=torch.int64)
    lengths = [e.ranges["color"][1] - e.ranges["color"][0] for e in chosen]

    def at(starts: list[list[int]], redraw=None) -> Split:
        load = lambda i: load_clips(chosen[i], root, starts[i], clip_frames, size)  # noqa: E731
        key = lambda i: file_key(chosen[i].video(root), range=chosen[i].ranges["color"], starts=starts[i],  # noqa: E731
                                 clip=clip_frames, size=size)
        clips = LazyFrames(len(chosen), (frames, 3, clip_frames, size, size), load, key)
        return Split(clips, targets, mirror=(NO_FLIP,) * NV_CLASSES, redraw=redraw)

    def draw(epoch_seed: int) -> Split:  # training: each clip anywhere in its segment, afresh every epoch
        rng = np.random.default_rng(epoch_seed)
        return at([jittered(n, frames, clip_frames, rng) for n in lengths], draw)

    return at([spread(n, frames, clip_frames) for n in lengths], draw if split == "train" else None)


nvgesture.redraws = True  # its training split draws its clips afresh every epoch (Split.redraw)
