"""UCF101 (Soomro et al. 2012), split 1: 101 actions, one class per video, two streams.

On disk, under ``data.root``:
  ``ucfTrainTestlist/`` (or the root itself): ``classInd.txt``, ``trainlist01.txt``,
      ``testlist01.txt`` (parsed by ``splits``; class names match case-insensitively);
  RGB, either the videos ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (decoded with PyAV)
      or the common pre-extracted frames ``jpegs_256/v_<Class>_gXX_cYY/frame000001.jpg``
      (used when present: random access, much faster);
  flow, pre-extracted TV-L1: ``tvl1_flow/u/v_<...>/frame000001.jpg`` and ``tvl1_flow/v/...``
      (greyscale, 128 = no motion). Needed by the temporal stream.

Loading (ours): ``frames`` time steps spread evenly over the video; step t shows
one RGB frame and the ``flow_stack`` flow fields that start there (u and v
interleaved: 2 x flow_stack channels). Frames are resized whole. Unreadable
frames are replaced by the nearest readable one, with a counted warning.
Videos are read when a batch reads them (``LazyFrames``).
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from . import SOURCES, LazyFrames, Split, sample_indices
from .splits import read_class_index, read_ucf_split, resolve_case_insensitive
from .video import DataFormatError, decode_video, nearest, read_image, spread

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
    """Frame images read on demand; an unreadable one is replaced by its nearest readable neighbour."""

    def __init__(self, paths: list[Path], size: int, what: str):
        self.paths, self.size, self.what, self.cache = paths, size, what, {}

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, i: int) -> np.ndarray:
        if i not in self.cache:
            self.cache[i] = read_image(self.paths[i], self.size)
        if self.cache[i] is not None:
            return self.cache[i]
        ok = [j for j in range(len(self.paths)) if j != i and self.get_or_none(j) is not None]
        if not ok:
            raise DataFormatError(f"{self.what}: no readable frame")
        return self.cache[nearest(ok, i)]

    def get_or_none(self, j: int):
        if j not in self.cache:
            self.cache[j] = read_image(self.paths[j], self.size)
        return self.cache[j]

    @property
    def bad(self) -> int:
        return sum(v is None for v in self.cache.values())


def load_video(name: str, video_path: Path | None, jpegs: Path | None, flow: Path | None, steps: int,
               flow_stack: int, size: int, with_flow: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB (steps, 3, size, size) and flow (steps, 2 * flow_stack, size, size) of one video."""
    if jpegs is not None:
        rgb_src = _Images(numbered_frames(jpegs / name), size, str(jpegs / name))
        n_rgb, rgb_at = len(rgb_src), lambda i: _rgb3(rgb_src.get(i))
    else:
        decoded, _, bad_video = decode_video(video_path, size)
        if not decoded:
            raise DataFormatError(f"{video_path}: no decodable frame")
        good = sorted(decoded)
        n_rgb = good[-1] + 1
        rgb_at = lambda i: _rgb3(decoded[nearest(good, i)])  # noqa: E731
    u = v = None
    if with_flow:
        u = _Images(numbered_frames(flow / "u" / name), size, str(flow / "u" / name))
        v = _Images(numbered_frames(flow / "v" / name), size, str(flow / "v" / name))
        if len(u) != len(v):
            raise DataFormatError(f"{flow / 'u' / name} has {len(u)} frames but {flow / 'v' / name} has {len(v)}")
    n_flow = len(u) if u is not None else n_rgb
    starts = spread(min(n_rgb, n_flow), steps, flow_stack if u is not None else 1)
    rgb = np.stack([rgb_at(s) for s in starts])
    fl = None
    if u is not None:
        at = lambda j: min(j, n_flow - 1)  # noqa: E731
        fl = np.stack([np.concatenate([np.concatenate([_grey(u.get(at(s + j))), _grey(v.get(at(s + j)))])
                                       for j in range(flow_stack)]) for s in starts])
    bad = (rgb_src.bad if jpegs is not None else bad_video) + (u.bad + v.bad if u is not None else 0)
    if bad:
        warnings.warn(f"UCF101 {name}: {bad} frames did not decode; used the nearest readable frame", stacklevel=2)
    return rgb, fl


def _rgb3(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame, 3, 0) if frame.shape[0] == 1 else frame


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
    names, paths = [], []
    for rel, _ in chosen:  # check every file is there now, not in the middle of an epoch
        name = Path(rel).stem
        names.append(name)
        if jpegs is not None:
            numbered_frames(jpegs / name)
            paths.append(None)
        else:
            paths.append(resolve_case_insensitive(root / "UCF-101", rel))
        numbered_frames(flow / "u" / name)
        numbered_frames(flow / "v" / name)

    @functools.lru_cache(maxsize=2)
    def load(i: int):
        return load_video(names[i], paths[i], jpegs, flow, frames, flow_stack, size, True)

    targets = torch.tensor([label for _, label in chosen], dtype=torch.int64)
    rgb = LazyFrames(len(chosen), (frames, 3, size, size), lambda i: load(i)[0])
    flows = LazyFrames(len(chosen), (frames, 2 * flow_stack, size, size), lambda i: load(i)[1])
    return Split(rgb, targets, flows)
