"""Reading frames from disk: video files with PyAV, frame images with Pillow.

Frames are resized whole to ``size`` x ``size`` (ours; 300VW crops faces instead) and
returned as uint8 (3, size, size). Frames that do not decode are left out and counted, so
loaders can skip them with a counted warning, never silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A dataset file that does not follow its format; the message names file and line."""


def decode_video(path: Path, size: int, stop: int | None = None, transform=None
                 ) -> tuple[dict[int, np.ndarray], tuple[int, int], int]:
    """{0-based frame index: (3, size, size) uint8} for every decodable frame before
    ``stop`` (all if None), the frame (width, height), and how many did not decode.
    ``transform(index, PIL image)`` replaces the whole-frame resize (None: leave the frame out)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video missing: {path}")
    frames, bad, wh = {}, 0, (0, 0)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise DataFormatError(f"{path}: not a readable video ({e})") from None
    with container:
        if not container.streams.video:
            raise DataFormatError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        index = 0
        for packet in container.demux(stream):
            if stop is not None and index >= stop:
                break
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                if packet.size:  # an undecodable frame still takes its place in the numbering
                    bad += 1
                    index += 1
                continue
            for frame in decoded:
                img = frame.to_image()
                wh = img.size
                out = resize(img, size) if transform is None else transform(index, img)
                if out is not None:
                    frames[index] = out
                index += 1
    return frames, wh, bad


def resize(img, size: int) -> np.ndarray:
    """PIL image -> (C, size, size) uint8: RGB images give 3 channels, greyscale ones 1."""
    from PIL import Image

    mode = "L" if img.mode in ("L", "I", "I;16", "F") else "RGB"
    arr = np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR), np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """(1 or 3, H, W) -> (3, H, W): grey frames repeated."""
    return np.repeat(frame, 3, 0) if frame.shape[0] == 1 else frame


def read_image(path: Path, size: int) -> np.ndarray | None:
    """One frame image -> (C, size, size) uint8, or None if it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return resize(img, size)
    except (UnidentifiedImageError, OSError, SyntaxError):
        return None


def nearest(available: list[int], wanted: int) -> int:
    """The available index closest to ``wanted`` (ties: the earlier one); ``available`` sorted."""
    i = int(np.searchsorted(available, wanted))
    if i == 0:
        return available[0]
    if i == len(available):
        return available[-1]
    before, after = available[i - 1], available[i]
    return after if after - wanted < wanted - before else before


def spread(n: int, count: int, span: int = 1) -> list[int]:
    """``count`` start positions of windows of ``span`` spread evenly over ``range(n)``."""
    last = max(n - span, 0)
    return [round(x) for x in np.linspace(0, last, count)]


def jittered(n: int, count: int, span: int, rng: np.random.Generator) -> list[int]:
    """``count`` starts of windows of ``span`` in ``range(n)``: one drawn at random from each of
    ``count`` equal segments of the possible starts (TSN's training sampling)."""
    edges = np.linspace(0, max(n - span, 0) + 1, count + 1).astype(int)
    return [int(rng.integers(a, max(a + 1, b))) for a, b in zip(edges[:-1], edges[1:])]
