"""300VW (Shen et al. 2015): face videos with 68 landmarks per frame.

On disk: ``<root>/<video id>/vid.avi`` and ``<root>/<video id>/annot/000001.pts``
(1-based frame index, 6 digits); instead of ``vid.avi`` a video may come as an
extracted-frame folder ``<root>/<video id>/frames/000001.jpg`` (or ``.png``), same
numbering as the annotations - used when present (random access, no decoding). A ``.pts`` file reads ``version: 1``,
``n_points: 68``, ``{``, 68 lines ``x y``, ``}``. The test videos are the three
categories below; the other videos train.

Loading (ours): each split is a set of clips of ``frames`` consecutive annotated
frames, ``videos`` clips per split (null: one per video), cycling through the
videos, at positions drawn from ``seed``; the whole
frame is resized to ``size`` x ``size`` (no face crop) and landmarks are
normalised by the frame's width and height. Annotated frames that do not decode
are skipped with a counted warning; a clip never spans one.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

from . import SOURCES, Split
from .video import DataFormatError, decode_video, read_image, to_rgb

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


def read_frames(video_dir: Path, size: int) -> tuple[dict[int, np.ndarray], tuple[int, int], int]:
    """{1-based index: (3, size, size) uint8} of every decodable frame, (width, height), bad count;
    from ``frames/`` if the folder exists, else from ``vid.avi``."""
    folder = video_dir / "frames"
    if not folder.is_dir():
        if not (video_dir / "vid.avi").is_file():
            raise FileNotFoundError(f"300VW video missing: {video_dir / 'vid.avi'} (nor a frames/ folder)")
        decoded, wh, bad = decode_video(video_dir / "vid.avi", size)
        return {i + 1: to_rgb(f) for i, f in decoded.items()}, wh, bad
    from PIL import Image

    frames, bad, wh = {}, 0, (0, 0)
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or not path.stem.isdigit():
            continue
        img = read_image(path, size)
        if img is None:
            bad += 1
            continue
        if wh == (0, 0):
            with Image.open(path) as im:
                wh = im.size
        frames[int(path.stem)] = to_rgb(img)
    return frames, wh, bad



@SOURCES.register("300vw")
@functools.lru_cache(maxsize=4)
def vw300(split: str, videos: int | None, frames: int, size: int, seed: int, root: str | None = None, **_) -> Split:
    if root is None:
        raise ValueError("data source '300vw' needs data.root: the directory holding <video id>/vid.avi")
    root = Path(root).expanduser()
    rng = np.random.default_rng(seed + (1 if split == "test" else 0))
    clips_x, clips_y, skipped = [], [], 0
    dirs = video_ids(root, split)
    for k in range(len(dirs) if videos is None else videos):
        d = dirs[k % len(dirs)]
        decoded, (w, h), bad = read_frames(d, size)
        annotated = {int(p.stem): p for p in (d / "annot").glob("*.pts")}
        usable = sorted(i for i in annotated if i in decoded)
        skipped += len(annotated) - len(usable)
        starts = [i for i in usable if all(i + j in decoded and i + j in annotated for j in range(frames))]
        if not starts:
            raise DataFormatError(f"{d}: no run of {frames} consecutive decodable annotated frames")
        s = starts[rng.integers(len(starts))]
        clips_x.append(np.stack([decoded[s + j] for j in range(frames)]))
        clips_y.append(np.stack([read_pts(annotated[s + j]) / [w, h] for j in range(frames)]))
    if skipped:
        warnings.warn(f"300VW {split}: skipped {skipped} annotated frames that did not decode", stacklevel=2)
    x = torch.from_numpy(np.stack(clips_x))  # (N, T, 3, size, size)
    y = torch.from_numpy(np.stack(clips_y)).flatten(2).float()  # (N, T, 136)
    return Split(x, y)
