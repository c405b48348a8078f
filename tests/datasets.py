"""Tiny datasets fabricated in the real on-disk formats (shared by the loader and paper-profile tests).

Videos are written with PyAV in FFV1 (lossless) so that frames read back exactly;
frame images are JPEGs, compared with what Pillow decodes from the same file.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from prernn.data.vw300 import CATEGORIES


def write_video(path: Path, frames: np.ndarray, codec: str = "ffv1") -> None:
    """(n, H, W, 3) uint8 -> a video file."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_jpg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)


def read_jpg(path: Path) -> np.ndarray:
    """(C, H, W) as Pillow decodes it: the exact value a loader must return at full size."""
    a = np.asarray(Image.open(path))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def frames(rng, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------ nvGesture

NV_LINE = "path:./Video_data/class_{c:02d}/subject{s}_r0 depth:sk_depth:{a}:{b} color:sk_color:{a}:{b} " \
          "duo_left:duo_left:{a}:{b} label:{label} "


def nvgesture(root: Path, size: int = 32, n: int = 12, seed: int = 0) -> dict:
    """Two training and two test videos; one line's label disagrees with its folder.
    Returns {split: [(frames (n, H, W, 3), start, end, 0-based label)]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, rows in (("train", [(1, 3, 2, 10, 1), (2, 4, 0, 12, 7)]), ("test", [(3, 5, 1, 3, 3), (4, 6, 4, 12, 25)])):
        lines, out[split] = [], []
        for folder, subject, a, b, label in rows:
            video = frames(rng, n, size)
            write_video(root / "Video_data" / f"class_{folder:02d}" / f"subject{subject}_r0" / "sk_color.avi", video)
            lines.append(NV_LINE.format(c=folder, s=subject, a=a, b=b, label=label))
            out[split].append((video, a, b, label - 1))
        (root / f"nvgesture_{split}_correct_cvpr2016_v2.lst").write_text("\n".join(lines) + "\n")
    return out


# ------------------------------------------------------------------ UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
UCF_TRAIN = [("ApplyEyeMakeup", "g08_c01"), ("HandStandPushups", "g01_c02"), ("YoYo", "g09_c03")]
UCF_TEST = [("YoYo", "g01_c01"), ("HandStandPushups", "g02_c01")]


def ucf101(root: Path, layout: str = "videos", size: int = 32, n: int = 10, seed: int = 0) -> dict:
    """Split 1 files, RGB as videos (UCF-101/) or frames (jpegs_256/), TV-L1 flow as jpegs.
    The videos' folders use the classInd spelling, the lists another case (as in the real set).
    Returns {name: (rgb (n, H, W, 3), label)}."""
    rng = np.random.default_rng(seed)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    index = {c.lower(): i for i, c in enumerate(UCF_CLASSES)}
    (lists / "trainlist01.txt").write_text(
        "".join(f"{c}/v_{c}_{g}.avi {index[c.lower()] + 1}\n" for c, g in UCF_TRAIN))
    (lists / "testlist01.txt").write_text("".join(f"{c}/v_{c}_{g}.avi\n" for c, g in UCF_TEST))
    out = {}
    for c, g in UCF_TRAIN + UCF_TEST:
        name = f"v_{c}_{g}"
        rgb = frames(rng, n, size)
        proper = UCF_CLASSES[index[c.lower()]]
        if layout == "videos":
            write_video(root / "UCF-101" / proper / f"v_{proper}_{g}.avi", rgb)
        else:
            for i, img in enumerate(rgb, start=1):
                write_jpg(root / "jpegs_256" / name / f"frame{i:06d}.jpg", img)
        for axis in "uv":
            for i in range(1, n):
                write_jpg(root / "tvl1_flow" / axis / name / f"frame{i:06d}.jpg",
                          rng.integers(0, 256, (size, size), dtype=np.uint8))
        out[name] = (rgb, index[c.lower()])
    return out


# ------------------------------------------------------------------ 300VW

def vw300(root: Path, size: int = 32, n: int = 6, seed: int = 0, as_frames: bool = False) -> dict:
    """One training video (001) and one test video; every frame annotated.
    Returns {video id: (rgb (n, H, W, 3), landmarks (n, 68, 2) in pixels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for vid in (1, CATEGORIES[1][0]):
        d = root / f"{vid:03d}"
        rgb = frames(rng, n, size)
        if as_frames:
            (d / "frames").mkdir(parents=True)
            for i, img in enumerate(rgb, start=1):
                Image.fromarray(img).save(d / "frames" / f"{i:06d}.png")
        else:
            write_video(d / "vid.avi", rgb)
        marks = rng.uniform(0, size, (n, 68, 2))
        (d / "annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in marks[i])
            (d / "annot" / f"{i + 1:06d}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
        out[vid] = (rgb, marks)
    return out
