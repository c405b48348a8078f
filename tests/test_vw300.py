"""300VW in its real on-disk format, fabricated here: .avi written with PyAV, .pts files."""

import numpy as np
import pytest

import torch

from prernn.data import SOURCES
from prernn.data.vw300 import CATEGORIES, DataFormatError, crop, crop_box, from_crop, read_pts, to_crop
from prernn.tasks import TASKS

W, H = 64, 48


def write_pts(path, pts):
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    path.write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")


def write_video(path, frames):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def fabricate(root, video_id: int, n_frames: int, seed: int, annotate=None):
    """Frame i (0-based) is a flat grey of 40 * i; the face sits inside the frame, so its crop is grey too."""
    rng = np.random.default_rng(seed)
    d = root / f"{video_id:03d}"
    (d / "annot").mkdir(parents=True)
    frames = [np.full((H, W, 3), 40 * i % 255, np.uint8) for i in range(n_frames)]
    write_video(d / "vid.avi", frames)
    marks = rng.uniform([0.3 * W, 0.3 * H], [0.7 * W, 0.7 * H], (n_frames, 68, 2))
    for i in annotate or range(1, n_frames + 1):
        write_pts(d / "annot" / f"{i:06d}.pts", marks[i - 1])
    return marks


def _position(clip_targets, video_targets, frames):
    """Where in the video's annotated frames a clip starts (its targets name it)."""
    for p in range(len(video_targets) - frames + 1):
        if np.allclose(video_targets[p:p + frames], clip_targets):
            return p
    raise AssertionError("clip not found in its video")


def test_training_clips_are_drawn_afresh_every_epoch_from_every_annotated_frame(tmp_path):
    marks = fabricate(tmp_path, 1, 12, 0)  # 001: not a test id -> train
    fabricate(tmp_path, CATEGORIES[1][0], 6, 1)
    train = SOURCES["300vw"]("train", None, 3, 16, 0, str(tmp_path))
    assert train.frames.shape == (4, 3, 3, 16, 16) and train.targets.shape == (4, 3, 136)  # 12 // 3 clips
    video = np.stack([to_crop(m, crop_box(m)) for m in np.round(marks, 3).astype(np.float32)]).reshape(12, 136)
    starts = set()
    for seed in range(6):
        epoch = train.redraw(seed)
        assert torch.equal(epoch.targets, train.redraw(seed).targets)  # the seed decides
        for c in range(len(epoch)):
            p = _position(epoch.targets[c].numpy(), video, 3)
            starts.add(p)
            # frames decode in order and each is cropped from its own frame (flat grey 40 * i)
            means = epoch.frames[c].float().mean((1, 2, 3)).numpy()
            np.testing.assert_allclose(means, [40 * (p + j) % 255 for j in range(3)], atol=6)
    assert len(starts) >= 6  # clips start anywhere, not at a fixed set of positions


def test_clips_never_span_an_unannotated_frame(tmp_path):
    fabricate(tmp_path, 2, 8, 0, annotate=[1, 2, 4, 5, 6, 7])
    for seed in range(4):
        clip = SOURCES["300vw"]("train", 1, 4, 16, 0, str(tmp_path)).redraw(seed)
        means = clip.frames[0].float().mean((1, 2, 3)).numpy()
        np.testing.assert_allclose(means, [40 * i for i in (3, 4, 5, 6)], atol=6)  # frames 4-7, 1-based


def test_a_test_video_is_evaluated_on_every_annotated_frame(tmp_path):
    marks = fabricate(tmp_path, CATEGORIES[2][0], 50, 3)
    fabricate(tmp_path, CATEGORIES[1][0], 5, 4)  # shorter than a window: its last frame repeats, counted once
    test = SOURCES["300vw"]("test", None, 16, 16, 0, str(tmp_path))
    assert test.mask.sum().item() == 50 + 5
    assert sorted(test.groups.tolist()) == [1] + [2] * 4  # windows at 0, 16, 32 and 34 (ending on frame 50)
    # the metric counts each frame once: the mean of 55 per-frame distances, and per category
    pred = test.targets + 0.01 * torch.arange(len(test))[:, None, None]
    per_frame = torch.linalg.norm((pred - test.targets).unflatten(-1, (-1, 2)), dim=-1).mean(-1)
    m = TASKS["face"].metrics(pred, test.targets, mask=test.mask, groups=test.groups)
    want = per_frame[test.mask]
    assert abs(m["test_loss"] - want.mean().item()) < 1e-6
    cat2 = per_frame[test.mask & (test.groups == 2)[:, None]]
    assert cat2.numel() == 50 and abs(m["test_loss_cat2"] - cat2.mean().item()) < 1e-6
    assert "test_loss_cat3" not in m  # no video of that category here


def test_crop_and_normalisation_round_trip_the_landmarks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform([10, 30], [200, 90], (68, 2)).astype(np.float32)
        box = crop_box(pts)
        inside = to_crop(pts, box)
        np.testing.assert_allclose(from_crop(inside, box), pts, atol=1e-3)
        assert inside.min() > 0 and inside.max() < 1  # the margin keeps the face inside the crop
        # isotropic: one scale on both axes, so distances scale alike
        a, b = rng.integers(68, size=2)
        np.testing.assert_allclose(np.linalg.norm(inside[a] - inside[b]), np.linalg.norm(pts[a] - pts[b]) / box[2],
                                   rtol=1e-4)


def test_the_crop_shows_a_landmark_where_its_coordinates_say():
    from PIL import Image

    img = np.zeros((120, 200, 3), np.uint8)
    pts = np.random.default_rng(1).uniform([60, 30], [140, 90], (68, 2)).astype(np.float32)
    x, y = pts[30].round().astype(int)
    img[y - 1:y + 2, x - 1:x + 2] = 255
    box = crop_box(pts)
    out = crop(Image.fromarray(img), box, 64)[0].astype(float)
    row, col = divmod(int(out.argmax()), 64)
    u, v = to_crop(pts[30], box) * 64
    assert abs(col + 0.5 - u) <= 1.5 and abs(row + 0.5 - v) <= 1.5


@pytest.mark.parametrize("text,error", [
    ("version: 1\nn_points: 68\n{\n1 2\n}\n", r":5: expected 68 points, found 1"),
    ("version: 1\nn_points: 5\n{\n", r":2: expected 'n_points: 68'"),
    ("", r":1: expected 'version: 1', got an empty file"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "1 x\n}\n", r":71: expected 'x y', got '1 x'"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 68, r":72: expected '}'"),
])
@pytest.mark.bad_input
def test_malformed_pts_names_file_and_line(tmp_path, text, error):
    path = tmp_path / "000001.pts"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=r"000001\.pts" + error):
        read_pts(path)


@pytest.mark.bad_input
def test_missing_things_are_clear(tmp_path):
    with pytest.raises(ValueError, match="needs data.root"):
        SOURCES["300vw"]("train", 1, 2, 16, 0, None)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        SOURCES["300vw"]("train", 1, 2, 16, 0, str(tmp_path / "nope"))
    (tmp_path / "001" / "annot").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"video missing: .*001/vid\.avi"):
        SOURCES["300vw"]("train", 1, 2, 16, 0, str(tmp_path))
    with pytest.raises(DataFormatError, match="no test videos"):
        SOURCES["300vw"]("test", 1, 2, 16, 0, str(tmp_path))
