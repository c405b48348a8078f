#!/usr/bin/env python
"""Frames per second into the model from real-format video, beside what the model consumes.

    python benchmarks/input_pipeline.py                  # 300VW and UCF101, 0/1/2 workers, cache
    python benchmarks/input_pipeline.py --workers 0 4 --epochs 3

Fabricates a small 300VW (``vid.avi`` in MPEG-4 at 640 x 360, ``.pts`` landmarks) and a
small UCF101 (``jpegs_256`` RGB and ``tvl1_flow`` jpegs at 340 x 256, split-1 lists) in a
temporary folder, then times what a trial receives (``prernn.data.loader``) at 224 x 224:
one pass to start the workers, then ``--epochs`` timed ones - training (fresh clips or
steps every epoch, augmentation on, as in the paper profiles) with 0, 1, 2 ... worker
processes; and with the decoded-frame cache (``data.cache_dir``) warm: 300VW training
(whole videos cached) and UCF101's test split (training steps change every epoch, so
only test items are cached). A 300VW frame is one cropped face; a UCF101 frame is one
RGB frame (spatial stream) or one stack of 10 flow fields (temporal stream). Beside it, the frames per second the paper's network trains on here
(PreLSTM fc6/7 on VGG16, the two-stream ResNet50 PreLSTM), for comparison; a GPU's come
from ``benchmarks/gpu.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prernn.data import SOURCES  # noqa: E402
from prernn.data.augment import Augment  # noqa: E402
from prernn.data.loader import Batches  # noqa: E402
from tests import datasets  # noqa: E402  (the tests' writers of the real formats)

SIZE, FRAMES, FLOW_STACK, BATCH = 224, 16, 10, 8


def fabricate_300vw(root: Path, videos: int, frames: int) -> None:
    """``videos`` training videos and one test video: a face-sized textured blob drifting over noise."""
    rng = np.random.default_rng(0)
    ids = [1 + i for i in range(videos)] + [datasets.CATEGORIES[1][0]]
    for vid in ids:
        d = root / f"{vid:03d}"
        t = np.arange(frames)
        centre = np.stack([320 + 80 * np.sin(t / 20), 180 + 30 * np.cos(t / 15)], 1)
        img = rng.integers(0, 256, (frames, 360, 640, 3), dtype=np.uint8)
        datasets.write_video(d / "vid.avi", img, codec="mpeg4")
        shape = rng.uniform(-60, 60, (68, 2))
        (d / "annot").mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            pts = centre[i] + shape
            body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
            (d / "annot" / f"{i + 1:06d}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")


def fabricate_ucf101(root: Path, videos: int, frames: int, distinct: int | None = None) -> None:
    """``videos`` training videos (and two test ones) as jpegs_256 frames and TV-L1 flow jpegs;
    with ``distinct``, only that many training videos are written and the rest link to them."""
    rng = np.random.default_rng(1)
    classes = ["ApplyEyeMakeup", "Basketball", "YoYo"]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train = [(classes[i % 3], f"g{i + 8:02d}_c01") for i in range(videos)]
    test = [(classes[i % 3], f"g{i + 1:02d}_c01") for i in range(2)]
    (lists / "trainlist01.txt").write_text("".join(f"{c}/v_{c}_{g}.avi {classes.index(c) + 1}\n" for c, g in train))
    (lists / "testlist01.txt").write_text("".join(f"{c}/v_{c}_{g}.avi\n" for c, g in test))
    names = [f"v_{c}_{g}" for c, g in train + test]
    for k, name in enumerate(names):
        if distinct is not None and distinct <= k < len(train):
            for folder in ("jpegs_256", "tvl1_flow/u", "tvl1_flow/v"):
                (root / folder / name).symlink_to(root / folder / names[k % distinct], target_is_directory=True)
            continue
        for i in range(1, frames + 1):
            datasets.write_jpg(root / "jpegs_256" / name / f"frame{i:06d}.jpg",
                               rng.integers(0, 256, (256, 340, 3), dtype=np.uint8))
            if i < frames:
                for axis in "uv":
                    datasets.write_jpg(root / "tvl1_flow" / axis / name / f"frame{i:06d}.jpg",
                                       rng.integers(96, 160, (256, 340), dtype=np.uint8))


def throughput(split, workers: int, epochs: int, augment: Augment | None, batch: int = BATCH,
               warp_on_device: bool = False) -> float:
    """Frames (steps) per second a training loop (``augment``) or an evaluation (None) receives
    over ``epochs`` passes, after one to warm up (start the workers, fill a cache);
    ``warp_on_device``: the workers only draw the augmentation, as for a trial on a GPU."""
    batches = Batches(split, batch, workers, torch.cuda.is_available(), augment=augment,
                      warp_on_device=warp_on_device)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    for _ in batches.epoch(order, 0, augment is not None):
        pass
    start, frames = time.perf_counter(), 0
    for e in range(1, epochs + 1):
        for x, *_ in batches.epoch(order, e, augment is not None):
            frames += x.shape[0] * x.shape[1]
    return frames / (time.perf_counter() - start)


def model_fps(name: str, frames: int = 4) -> float:
    """Frames per second the paper's network trains on here: ``benchmarks/gpu.py``'s step (fp32,
    forward + backward + SGD, both streams for the two-stream network), batch 1 of ``frames`` steps."""
    from benchmarks.gpu import NETWORKS, measure

    short = {n: {**v, "data": {**v["data"], "frames": frames}} for n, v in NETWORKS.items()}
    return measure(name, "fp32", steps=2, warmup=1, size=1, device="cpu", networks=short)["frames_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--videos", type=int, default=8, help="training videos per dataset (default 8)")
    p.add_argument("--no-model", action="store_true", help="leave out the model's own frames per second")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {SIZE} x {SIZE}, batch {BATCH}, "
          f"{FRAMES} steps per sequence, augmentation on")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        fabricate_300vw(tmp / "300vw", a.videos, 160)
        fabricate_ucf101(tmp / "ucf101", a.videos, 80)
        print(f"fabricated {a.videos} training videos per dataset in {time.perf_counter() - t:.0f} s")
        face = lambda split, cache=None: SOURCES["300vw"].__wrapped__(  # noqa: E731
            split, None, FRAMES, SIZE, 0, str(tmp / "300vw"), cache_dir=cache)
        action = lambda split: SOURCES["ucf101"].__wrapped__(  # noqa: E731
            split, None, FRAMES, SIZE, 0, str(tmp / "ucf101"), flow_stack=FLOW_STACK)
        flow = {"spatial": False, "temporal": True}
        rows = []
        for workers in a.workers:
            rows.append(("300VW train", workers, "decode", throughput(face("train"), workers, a.epochs,
                                                                      Augment(landmarks=True))))
            for stream in flow:
                rows.append((f"UCF101 {stream} train", workers, "decode",
                             throughput(action("train").stream(stream), workers, a.epochs,
                                        Augment(flow=flow[stream]))))
        cache = str(tmp / "cache")
        for workers in (0, max(a.workers)):  # whole 300VW videos; UCF101's fixed test items
            rows.append(("300VW train", workers, "frame cache",
                         throughput(face("train", cache), workers, a.epochs, Augment(landmarks=True))))
            for stream in flow:
                rows.append((f"UCF101 {stream} test", workers, "decode",
                             throughput(action("test").stream(stream), workers, a.epochs, None)))
                rows.append((f"UCF101 {stream} test", workers, "frame cache",
                             throughput(action("test").cached(cache).stream(stream), workers, a.epochs, None)))
    print(f"\n{'data':22} {'workers':>7} {'read':>12} {'frames/s':>9}")
    for data, workers, how, fps in rows:
        print(f"{data:22} {workers:>7} {how:>12} {fps:>9.1f}")
    if not a.no_model:
        print("\nthe model itself, training on this CPU (fp32, batch 1 x 4 steps; benchmarks/gpu.py's step):")
        for name in ("vgg16", "resnet50"):
            print(f"  {name:9} {model_fps(name):.1f} frames/s")


if __name__ == "__main__":
    main()
