"""UCF101 (Soomro et al. 2012), split 1: 101 actions, one class per video, two streams.

On disk, under ``data.root``:
  ``ucfTrainTestlist/`` (or the root itself): ``classInd.txt``, ``trainlist01.txt``,
      ``testlist01.txt`` (parsed by ``splits``; class names match case-insensitively);
  RGB, either the videos ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (decoded with PyAV)
      or the common pre-extracted frames ``jpegs_256/v_<Class>_gXX_cYY/frame000001.jpg``
      (used when present: random access, much faster);
  flow, pre-extracted TV-L1: ``tvl1_flow/u/v_<...>/frame000001.jpg`` and ``tvl1_flow/v/...``
      (greyscale, 128 = no motion). Needed by the temporal stream.

Loading (ours where the paper is silent): a video is ``frames`` time steps; step t shows
one RGB frame and the ``flow_stack`` flow fields that start there (u and v interleaved:
2 x flow_stack channels). Testing spreads the steps evenly over the video (the test
averages their softmax, and the two streams'); training draws them afresh every epoch,
one at random in each of ``frames`` equal segments of the video (TSN's sampling,
``Split.redraw``). Frames are resized whole. Unreadable
frames are replaced by the nearest readable one, with a counted warning.
Each stream is read when a batch reads it (``LazyFrames``): RGB and flow separately.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from . import SOURCES, LazyFrames, Split, sample_indices
from .frame_cache import file_key
from .splits import read_class_index, read_ucf_split, resolve_case_insensitive
from .video import DataFormatError, decode_video, jittered, nearest, read_image, spread, to_rgb

SPLIT_FILES = {"train": "trainlist01.txt", "test": "testlist01.txt"}
FRAME = re.compile(r"frame(\d+)\.jpg$")


def list_dir(root: Path) -> Path:
    for d in (root / "ucfTrainTestlist", root):
        if (d / "classInd.txt").is_file():
            return d
    raise FileNotFoundError(f"UCF101 split files missing: no classInd.txt in {root / 'ucfTrainTestlist'} or {root}")


def numbered_frames(folder: Path) -> list[Path]:
    """frame000001.jpg, frame000002.jpg, ... in order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"UCF101 frames missing: {folder}")
    frames = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := FRAME.match(p.name)))
    if not frames:
        raise DataFormatError(f"{folder}: no frameNNNNNN.jpg files")
    return [p for _, p in frames]


class _Images:
    """Numbered frame images read on demand; an unreadable one is replaced by its nearest readable neighbour."""

    def __init__(self, folder: Path, size: int):
        self.folder, self.paths, self.size, self.cache = folder, numbered_frames(folder), size, {}

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray | None:
        if i not in self.cache:
            self.cache[i] = read_image(self.paths[i], self.size)
        return self.cache[i]

    def get(self, i: int) -> np.ndarray:
        if self._read(i) is not None:
            return self.cache[i]
        ok = [j for j in range(len(self.paths)) if self._read(j) is not None]
        if not ok:
            raise DataFormatError(f"{self.folder}: no readable frame")
        return self.cache[nearest(ok, i)]

    def warn_bad(self) -> None:
        bad = sum(v is None for v in self.cache.values())
        if bad:
            warnings.warn(f"UCF101 {self.folder}: {bad} frames did not decode; used the nearest readable frame",
                          stacklevel=3)


def load_rgb(starts: list[int], video: Path | None, frames_dir: Path | None, size: int) -> np.ndarray:
    """(steps, 3, size, size): the RGB frame at each start, from the frame folder or the video."""
    if frames_dir is not None:
        images = _Images(frames_dir, size)
        rgb = np.stack([to_rgb(images.get(min(s, len(images) - 1))) for s in starts])
        images.warn_bad()
        return rgb
    decoded, _, bad = decode_video(video, size)
    if not decoded:
        raise DataFormatError(f"{video}: no decodable frame")
    if bad:
        warnings.warn(f"UCF101 {video}: {bad} frames did not decode; used the nearest readable frame", stacklevel=2)
    good = sorted(decoded)
    return np.stack([to_rgb(decoded[nearest(good, s)]) for s in starts])


def load_flow(starts: list[int], u_dir: Path, v_dir: Path, flow_stack: int, size: int) -> np.ndarray:
    """(steps, 2 * flow_stack, size, size): u, v of the flow_stack fields from each start, interleaved."""
    u, v = _Images(u_dir, size), _Images(v_dir, size)
    last = len(u) - 1
    flow = np.stack([np.concatenate([np.concatenate([_grey(u.get(min(s + j, last))), _grey(v.get(min(s + j, last)))])
                                     for j in range(flow_stack)]) for s in starts])
    u.warn_bad()
    v.warn_bad()
    return flow


def _grey(frame: np.ndarray) -> np.ndarray:
    return frame[:1] if frame.shape[0] == 1 else frame.mean(0, keepdims=True).round().astype(np.uint8)


@SOURCES.register("ucf101")
@functools.lru_cache(maxsize=4)
def ucf101(split: str, videos: int | None, frames: int, size: int, seed: int, root: str | None = None,
           flow_stack: int = 10, **_) -> Split:
    if root is None:
        raise ValueError("data source 'ucf101' needs data.root: the folder holding ucfTrainTestlist/ and "
                         "UCF-101/ or jpegs_256/ (and tvl1_flow/ for the temporal stream)")
    root = Path(root).expanduser()
    lists = list_dir(root)
    classes = read_class_index(lists / "classInd.txt")
    split_file = lists / SPLIT_FILES[split]
    if not split_file.is_file():
        raise FileNotFoundError(f"UCF101 split file missing: {split_file}")
    entries = read_ucf_split(split_file, classes)
    if not entries:
        raise DataFormatError(f"{split_file}: lists no videos")
    chosen = [entries[i] for i in sample_indices(len(entries), videos, seed)]
    jpegs = root / "jpegs_256" if (root / "jpegs_256").is_dir() else None
    flow = root / "tvl1_flow"
    if not flow.is_dir():  # the temporal stream is half of every two-stream trial
        raise FileNotFoundError(f"UCF101 optical flow missing: {flow}/u and {flow}/v (pre-extracted TV-L1 "
                                "frames, e.g. from the common tvl1_flow release)")
    rgb_src, flow_dirs, lengths = [], [], []
    for rel, _ in chosen:  # check every file is there now, not in the middle of an epoch
        name = Path(rel).stem
        u, v = flow / "u" / name, flow / "v" / name
        n_u, n_v = len(numbered_frames(u)), len(numbered_frames(v))
        if n_u != n_v:
            raise DataFormatError(f"{u} has {n_u} frames but {v} has {n_v}")
        if jpegs is not None:
            numbered_frames(jpegs / name)
            rgb_src.append((None, jpegs / name))
        else:
            rgb_src.append((resolve_case_insensitive(root / "UCF-101", rel), None))
        flow_dirs.append((u, v))
        lengths.append(n_u)
    targets = torch.tensor([label for _, label in chosen], dtype=torch.int64)

    def at(starts: list[list[int]], redraw=None) -> Split:
        rgb = LazyFrames(len(chosen), (frames, 3, size, size), lambda i: load_rgb(starts[i], *rgb_src[i], size),
                         lambda i: file_key(*(p for p in rgb_src[i] if p), size=size, starts=starts[i], rgb=1))
        flows = LazyFrames(len(chosen), (frames, 2 * flow_stack, size, size),
                           lambda i: load_flow(starts[i], *flow_dirs[i], flow_stack, size),
                           lambda i: file_key(*flow_dirs[i], size=size, starts=starts[i], stack=flow_stack))
        return Split(rgb, targets, flows, redraw=redraw)

    def draw(epoch_seed: int) -> Split:  # training: each step anywhere in its segment, afresh every epoch
        rng = np.random.default_rng(epoch_seed)
        return at([jittered(n, frames, flow_stack, rng) for n in lengths], draw)

    evenly = [spread(n, frames, flow_stack) for n in lengths]  # testing: steps spread evenly over the flow
    return at(evenly, draw if split == "train" else None)


ucf101.redraws = True  # its training split draws its steps afresh every epoch (Split.redraw)
