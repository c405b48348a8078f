"""Augmentation: one transform per sequence, applied identically to frames and landmarks."""

import numpy as np
import pytest
import torch

from prernn.data.augment import DEVICE_TOLERANCE, Augment, warp_frames, warp_landmarks
from prernn.data.synthetic_face import MIRROR, face_template


def test_flipped_face_landmarks_are_the_mirrored_permuted_originals():
    pts = torch.tensor((face_template() * 0.5 + 0.5).reshape(1, 136), dtype=torch.float32)  # in [0, 1]
    flipped = warp_landmarks(pts, {"s": 1.0, "tx": 0.0, "ty": 0.0, "flip": True}).unflatten(-1, (-1, 2))
    mirrored = pts.unflatten(-1, (-1, 2)).clone()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    torch.testing.assert_close(flipped, mirrored[:, torch.as_tensor(MIRROR)])
    # the template is symmetric, so the flipped face is the face itself
    torch.testing.assert_close(flipped, pts.unflatten(-1, (-1, 2)), atol=1e-6, rtol=0)


def test_frames_and_landmarks_move_together():
    H = W = 64
    for t in ({"s": 1.2, "tx": 0.05, "ty": -0.08, "flip": True}, {"s": 0.9, "tx": -0.1, "ty": 0.02, "flip": False}):
        frame = torch.zeros(1, 1, H, W, dtype=torch.uint8)
        x, y = 20, 37  # a bright 3x3 blob
        frame[0, 0, y - 1:y + 2, x - 1:x + 2] = 255
        pts = torch.zeros(1, 136)
        pts[0, :2] = torch.tensor([(x + 0.5) / W, (y + 0.5) / H])
        out = warp_frames(frame, t)[0, 0].float()
        peak = divmod(int(out.argmax()), W)  # (row, col)
        where = warp_landmarks(pts, t)[0].unflatten(-1, (-1, 2))
        point = where[0] if not t["flip"] else where[int(np.where(MIRROR == 0)[0][0])]
        assert abs(point[0].item() * W - 0.5 - peak[1]) <= 1.5 and abs(point[1].item() * H - 0.5 - peak[0]) <= 1.5


def test_same_transform_for_every_frame_and_deterministic():
    frames = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    label = torch.tensor(0)
    a, _ = Augment()(frames, label, torch.Generator().manual_seed(3))
    b, _ = Augment()(frames, label, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == frames.shape and a.dtype == torch.uint8
    same = Augment()(frames[:1].expand(5, -1, -1, -1), label, torch.Generator().manual_seed(4))[0]
    assert all(torch.equal(same[0], f) for f in same)


def test_a_face_trial_trains_with_augmentation(tmp_path):
    from prernn.config import DataConfig, TrainConfig
    from prernn.trial import run_trial

    cfg = {"task": "face", "seed": 0,
           "data": DataConfig(source="synthetic_face", train_videos=4, test_videos=2, frames=3, size=32,
                              augment=True).to_dict(),
           "backbone": {"name": "mini_vgg", "pretrained": "none"},
           "model": {"model": "prernn", "cell": "gru", "variant": "gate", "layers": ["fc6", "fc7"],
                     "input_init": "pretrained", "recurrent_init": "zeros", "extra_layers": 0},
           "train": TrainConfig(epochs=2, batch_size=2, lr=0.01, schedule="constant").to_dict()}
    a = run_trial(cfg, tmp_path / "a", log=lambda m: None)
    b = run_trial({**cfg, "data": {**cfg["data"], "augment": False}}, tmp_path / "b", log=lambda m: None)
    assert len(a["history"]) == 2 and a["history"][0]["train_loss"] != b["history"][0]["train_loss"]


# ------------------------------------------------------------------ the warp after the copy to a GPU

STREAMS = [("synthetic_face", "spatial", {}), ("synthetic_action", "temporal", {"flow_stack": 2}),
           ("synthetic_action", "spatial", {"flow_stack": 2}), ("synthetic_gesture", "spatial", {"clip_frames": 4})]


@pytest.mark.parametrize("source,stream,kw", STREAMS)
def test_the_warp_on_the_device_gives_the_workers_frames(source, stream, kw):
    """A GPU trial's batches (transforms drawn where the batch is read, the warp after the copy,
    all sequences in one grid_sample) against the CPU's (each sequence warped where it is read),
    on CPU tensors: the same targets, and frames within DEVICE_TOLERANCE - identical on the CPU."""
    from prernn.data import SOURCES
    from prernn.data.loader import Batches
    from prernn.train.device import Placement

    split = SOURCES[source]("train", videos=7, frames=3, size=24, seed=0, **kw).stream(stream)
    augment = Augment(landmarks=source == "synthetic_face", flow=stream == "temporal", mirror=split.mirror)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(1))
    here = list(Batches(split, 3, augment=augment).epoch(order, 11, True))
    later = Batches(split, 3, augment=augment, warp_on_device=True)
    drawn = list(later.epoch(order, 11, True))
    assert len(drawn) == len(here) == 3 and all(len(b) == 3 for b in drawn)
    place = Placement(torch.device("cpu"))
    flips = 0
    for (x, y), (raw, targets, rows) in zip(here, drawn, strict=True):
        warped = place.batch(raw, lambda b, rows=rows: later.augment.warp_batch(b, rows))
        assert warped.shape == x.shape and warped.dtype == x.dtype
        assert (warped.int() - x.int()).abs().max() <= DEVICE_TOLERANCE
        assert torch.equal(warped, x)
        assert torch.equal(targets, y)
        flips += int(rows[:, 3].sum())
    assert 0 < flips < len(split)  # some sequences flipped, some not: both maps were compared
    assert not torch.equal(drawn[0][0], here[0][0])  # the batch travelled unwarped


def test_a_trial_down_its_gpu_branch_on_the_cpu_trains_as_on_the_cpu(monkeypatch, tmp_path, request):
    """run_trial with Placement.cuda forced on CPU tensors: network and batches channels-last,
    the augmentation warped after the copy. The losses are the CPU branch's (to conv rounding)."""
    from prernn.trial import run_trial

    cfg = {"task": "gesture", "seed": 0,
           "data": {"source": "synthetic_gesture", "train_videos": 6, "test_videos": 2, "frames": 2, "size": 32,
                    "clip_frames": 16, "augment": True},
           "backbone": {"name": "mini_c3d", "pretrained": "none"},
           "model": {"model": "prernn", "cell": "lstm", "variant": "gate"},
           "train": {"epochs": 2, "batch_size": 3, "lr": 0.01, "schedule": "constant", "device": "cpu"}}
    cpu = run_trial(cfg, tmp_path / "cpu", log=lambda m: None)
    request.getfixturevalue("cuda_branch")  # from here on
    warps = []
    real = Augment.warp_batch
    monkeypatch.setattr(Augment, "warp_batch", lambda self, x, t: warps.append(len(x)) or real(self, x, t))
    gpu = run_trial(cfg, tmp_path / "gpu", log=lambda m: None)
    assert warps == [3, 3] * 2  # every training batch of both epochs, after the copy
    for a, b in zip(cpu["history"], gpu["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
