"""300VW (Shen et al. 2015): face videos with 68 landmarks per frame.

On disk: ``<root>/<video id>/vid.avi`` and ``<root>/<video id>/annot/000001.pts``
(1-based frame index, 6 digits); instead of ``vid.avi`` a video may come as an
extracted-frame folder ``<root>/<video id>/frames/000001.jpg`` (or ``.png``), same
numbering as the annotations - used when present (random access, no decoding). A ``.pts`` file reads ``version: 1``,
``n_points: 68``, ``{``, 68 lines ``x y``, ``}``. The test videos are the three
categories below; the other videos train.

Loading - the usual detector-free protocol on this dataset; its parameters are ours:

- every annotated frame is cropped to the square around its 68 landmarks, grown by
  ``MARGIN`` (12.5% of the face's larger side on each side; outside the frame: black),
  and resized to ``size`` x ``size``; the landmarks are normalised isotropically in
  that crop (``crop_box``, ``to_crop``; ``from_crop`` maps predictions back to pixels);
- training (``videos`` of the training videos, null: all): every epoch draws its
  clips afresh from every annotated frame of every training video (``Split.redraw``)
  - a video of F annotated frames gives F // ``frames`` clips of ``frames``
  consecutive annotated frames, each starting anywhere such a run starts;
- testing: every annotated frame of every test video, once, through windows of
  ``frames`` steps laid end to end over the video (the last one shifted back to end
  on the last frame; ``Split.mask`` counts each frame once), reported per test
  category (``Split.groups``: 1-3) and overall.

An annotated frame that does not decode is replaced by the nearest one that does,
with a counted warning. A whole video is decoded at once; ``data.cache_dir`` keeps
it decoded (``frame_cache``), which training on fresh clips every epoch needs.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import SOURCES, LazyFrames, Split, sample_indices
from .frame_cache import cache_file, cached_load, file_key
from .video import DataFormatError, decode_video, nearest, to_rgb

CATEGORIES = {
    1: (114, 124, 125, 126, 150, 158, 401, 402, 505, 506, 507, 508, 509, 510, 511, 514, 515, 518, 519, 520, 521,
        522, 524, 525, 537, 538, 540, 541, 546, 547, 548),
    2: (203, 208, 211, 212, 213, 214, 218, 224, 403, 404, 405, 406, 407, 408, 409, 412, 550, 551, 553),
    3: (410, 411, 516, 517, 526, 528, 529, 530, 531, 533, 557, 558, 559, 562),
}
TEST_IDS = frozenset(i for ids in CATEGORIES.values() for i in ids)


def read_pts(path: Path, n_points: int = 68) -> np.ndarray:
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    def fail(line: int, what: str):
        raise DataFormatError(f"{path}:{line}: {what}")
    if not lines or not lines[0].startswith("version:"):
        fail(1, "expected 'version: 1', got " + (repr(lines[0]) if lines else "an empty file"))
    if len(lines) < 2 or lines[1].replace(" ", "") != f"n_points:{n_points}":
        fail(2, f"expected 'n_points: {n_points}', got " + (repr(lines[1]) if len(lines) > 1 else "the end of the file"))
    if len(lines) < 3 or lines[2] != "{":
        fail(3, "expected '{'")
    points = []
    for i in range(n_points):
        line_no = 4 + i
        if line_no > len(lines) or lines[line_no - 1] == "}":
            fail(line_no, f"expected {n_points} points, found {i}")
        parts = lines[line_no - 1].split()
        try:
            x, y = map(float, parts)
        except ValueError:
            fail(line_no, f"expected 'x y', got {lines[line_no - 1]!r}")
        points.append((x, y))
    if len(lines) < 4 + n_points or lines[3 + n_points] != "}":
        fail(4 + n_points, "expected '}' after the points")
    return np.asarray(points, np.float32)


def video_ids(root: Path, split: str) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"300VW root {root} is not a directory")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.isdigit())
    chosen = [d for d in dirs if (int(d.name) in TEST_IDS) == (split == "test")]
    if not chosen:
        raise DataFormatError(f"{root}: no {split} videos (<video id>/vid.avi) found")
    return chosen


MARGIN = 0.25  # the crop's side is the landmarks' larger extent x (1 + MARGIN)


def crop_box(points: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks in pixels -> (x0, y0, side): the square crop around them."""
    lo, hi = points.min(0), points.max(0)
    side = max(float((hi - lo).max()), 1.0) * (1 + MARGIN)
    centre = (lo + hi) / 2
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side], np.float64)


def to_crop(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixel landmarks -> [0, 1] coordinates of the crop, the same scale on both axes."""
    return ((points - box[:2]) / box[2]).astype(np.float32)


def from_crop(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``to_crop``'s inverse: crop coordinates -> pixels (e.g. predictions, for reporting)."""
    return points * box[2] + box[:2]


def crop(img, box: np.ndarray, size: int) -> np.ndarray:
    """PIL image -> (3, size, size) uint8 of the square ``box`` (outside the frame: black)."""
    from PIL import Image

    x0, y0, side = box
    out = img.convert("RGB").transform((size, size), Image.EXTENT, (x0, y0, x0 + side, y0 + side),
                                       resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out, np.uint8).transpose(2, 0, 1)


@dataclass(frozen=True, eq=False)  # hashed by identity: one object per video and split
class Video:
    """One video's annotated frames: 1-based numbers, landmarks (F, 68, 2) in pixels, crops."""

    dir: Path
    numbers: tuple[int, ...]
    points: np.ndarray
    category: int  # 1-3 for the test videos, 0 for training ones

    @functools.cached_property
    def boxes(self) -> np.ndarray:
        return np.stack([crop_box(p) for p in self.points])

    @functools.cached_property
    def targets(self) -> torch.Tensor:
        """(F, 136) landmarks in crop coordinates."""
        return torch.from_numpy(np.stack([to_crop(p, b) for p, b in zip(self.points, self.boxes)])).flatten(1)

    def source(self) -> Path:
        folder = self.dir / "frames"
        return folder if folder.is_dir() else self.dir / "vid.avi"

    def key(self, size: int) -> str:
        return file_key(self.source(), self.dir / "annot", size=size, margin=MARGIN, crop="landmarks")

    def runs(self, frames: int) -> list[int]:
        """Positions where ``frames`` consecutive annotated frames start."""
        n = np.asarray(self.numbers)
        return [p for p in range(len(n) - frames + 1) if n[p + frames - 1] - n[p] == frames - 1]


def read_video(video_dir: Path, category: int) -> Video:
    if not (video_dir / "frames").is_dir() and not (video_dir / "vid.avi").is_file():
        raise FileNotFoundError(f"300VW video missing: {video_dir / 'vid.avi'} (nor a frames/ folder)")
    annotated = sorted((int(p.stem), p) for p in (video_dir / "annot").glob("*.pts") if p.stem.isdigit())
    if not annotated:
        raise DataFormatError(f"{video_dir}: no annot/NNNNNN.pts files")
    return Video(video_dir, tuple(n for n, _ in annotated), np.stack([read_pts(p) for _, p in annotated]), category)


def load_crops(video: Video, size: int) -> np.ndarray:
    """(F, 3, size, size) uint8: every annotated frame cropped around its landmarks."""
    position = {n: i for i, n in enumerate(video.numbers)}
    crops: dict[int, np.ndarray] = {}
    folder = video.dir / "frames"
    if folder.is_dir():
        from PIL import Image, UnidentifiedImageError

        files = {int(p.stem): p for p in folder.iterdir() if p.stem.isdigit()
                 and p.suffix.lower() in (".jpg", ".jpeg", ".png")}
        for n, i in position.items():
            if n in files:
                try:
                    with Image.open(files[n]) as img:
                        crops[i] = crop(img, video.boxes[i], size)
                except (UnidentifiedImageError, OSError, SyntaxError):
                    pass
    else:
        def transform(index: int, img):
            i = position.get(index + 1)  # decode_video counts from 0, the annotations from 1
            return None if i is None else crop(img, video.boxes[i], size)

        decoded, _, _ = decode_video(video.dir / "vid.avi", size, stop=max(video.numbers), transform=transform)
        crops = {position[index + 1]: c for index, c in decoded.items()}  # by video index -> by annotated frame
    if not crops:
        raise DataFormatError(f"{video.dir}: none of its {len(position)} annotated frames decodes")
    missing = len(position) - len(crops)
    if missing:
        warnings.warn(f"300VW {video.dir}: {missing} annotated frames did not decode; used the nearest that did",
                      stacklevel=2)
    good = sorted(crops)
    return np.stack([to_rgb(crops[nearest(good, i)]) for i in range(len(position))])


def _windows(f: int, frames: int) -> list[int]:
    """Starts of windows of ``frames`` over ``f`` positions, end to end, the last ending at the end."""
    starts = list(range(0, max(f - frames, 0) + 1, frames))
    if starts[-1] + frames < f:
        starts.append(f - frames)
    return starts


def train_split(videos: list[Video], frames: int, size: int, seed: int, cache_dir: str | None) -> Split:
    """F // frames clips per video, drawn from ``seed`` (``redraw(epoch seed)``: another epoch's)."""
    starts_of = [video.runs(frames) for video in videos]  # where a clip may start, per video
    slots = [(v, k) for v, video in enumerate(videos) if starts_of[v] for k in range(len(video.numbers) // frames)]
    if not slots:
        raise DataFormatError(f"300VW train: no video has {frames} consecutive annotated frames")

    def draw(epoch_seed: int) -> Split:
        rng = np.random.default_rng(epoch_seed)
        starts = [starts_of[v][rng.integers(len(starts_of[v]))] for v, _ in slots]
        load = lambda i: read_crops(videos[slots[i][0]], size, cache_dir)[starts[i]:starts[i] + frames]  # noqa: E731
        targets = torch.stack([videos[v].targets[s:s + frames] for (v, _), s in zip(slots, starts)])
        return Split(LazyFrames(len(slots), (frames, 3, size, size), load, cache_file=_file_of(
            lambda i: videos[slots[i][0]], size, cache_dir)), targets, redraw=draw)

    return draw(seed)


def test_split(videos: list[Video], frames: int, size: int, cache_dir: str | None) -> Split:
    """Every annotated frame of every video once (``mask``), in windows of ``frames``."""
    items, masks = [], []
    for v, video in enumerate(videos):
        f, counted = len(video.numbers), 0
        for s in _windows(f, frames):
            take = [min(s + j, f - 1) for j in range(frames)]  # a video shorter than a window repeats its last
            items.append((v, take))
            masks.append([s + j >= counted and s + j < f for j in range(frames)])
            counted = min(s + frames, f)
    load = lambda i: read_crops(videos[items[i][0]], size, cache_dir)[items[i][1]]  # noqa: E731
    targets = torch.stack([videos[v].targets[take] for v, take in items])
    file = _file_of(lambda i: videos[items[i][0]], size, cache_dir)
    return Split(LazyFrames(len(items), (frames, 3, size, size), load, cache_file=file), targets,
                 mask=torch.tensor(masks), groups=torch.tensor([videos[v].category for v, _ in items]))


def _file_of(video_of, size: int, cache_dir: str | None):
    """item -> the cache file of its whole video's crops (None without a cache)."""
    if cache_dir is None:
        return None
    return lambda i: cache_file(cache_dir, video_of(i).key(size))


def read_crops(video: Video, size: int, cache_dir: str | None) -> np.ndarray:
    """A video's crops: decoded once per ``cache_dir`` and memory-mapped from there, or
    decoded here (the last few videos kept in memory)."""
    if cache_dir is None:
        return _decoded(video, size)
    return cached_load(lambda _: load_crops(video, size), lambda _: video.key(size), cache_dir, mmap=True)(0)


@functools.lru_cache(maxsize=2)
def _decoded(video: Video, size: int) -> np.ndarray:
    return load_crops(video, size)


@SOURCES.register("300vw")
@functools.lru_cache(maxsize=4)
def vw300(split: str, videos: int | None, frames: int, size: int, seed: int, root: str | None = None,
          cache_dir: str | None = None, **_) -> Split:
    if root is None:
        raise ValueError("data source '300vw' needs data.root: the directory holding <video id>/vid.avi")
    dirs = video_ids(Path(root).expanduser(), split)
    chosen = [dirs[i] for i in sample_indices(len(dirs), videos, seed)]
    category = {i: c for c, ids in CATEGORIES.items() for i in ids}
    read = [read_video(d, category.get(int(d.name), 0)) for d in chosen]
    return (train_split(read, frames, size, seed, cache_dir) if split == "train"
            else test_split(read, frames, size, cache_dir))


vw300.redraws = True  # its training split draws fresh clips every epoch (Split.redraw): no fixed features
