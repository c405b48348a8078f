"""300VW in its real on-disk format, fabricated here: .avi written with PyAV, .pts files."""

import numpy as np
import pytest

from prernn.data import SOURCES
from prernn.data.vw300 import CATEGORIES, DataFormatError, read_pts

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
    rng = np.random.default_rng(seed)
    d = root / f"{video_id:03d}"
    (d / "annot").mkdir(parents=True)
    frames = [np.full((H, W, 3), 40 * i % 255, np.uint8) for i in range(n_frames)]
    write_video(d / "vid.avi", frames)
    marks = rng.uniform([0, 0], [W, H], (n_frames, 68, 2))
    for i in annotate or range(1, n_frames + 1):
        write_pts(d / "annot" / f"{i:06d}.pts", marks[i - 1])
    return marks


def test_reads_clips_and_landmarks_back(tmp_path):
    train_marks = fabricate(tmp_path, 1, 6, 0)  # 001: not a test id -> train
    test_id = CATEGORIES[1][0]
    test_marks = fabricate(tmp_path, test_id, 6, 1)
    train = SOURCES["300vw"]("train", 2, 6, 16, 0, str(tmp_path))
    assert train.frames.shape == (2, 6, 3, 16, 16) and train.targets.shape == (2, 6, 136)
    expected = (train_marks / [W, H]).reshape(6, 136)
    np.testing.assert_allclose(train.targets[0].numpy(), expected, atol=1e-3)
    test = SOURCES["300vw"]("test", 1, 6, 16, 0, str(tmp_path))
    np.testing.assert_allclose(test.targets[0].numpy(), (test_marks / [W, H]).reshape(6, 136), atol=1e-3)
    # frames decode in order: frame i is a flat grey of value 40 * i (up to codec error)
    means = train.frames[0].float().mean((1, 2, 3)).numpy()
    np.testing.assert_allclose(means, [40 * i for i in range(6)], atol=6)


def test_clips_skip_unannotated_frames(tmp_path):
    fabricate(tmp_path, 2, 8, 0, annotate=[1, 2, 4, 5, 6, 7])
    clip = SOURCES["300vw"]("train", 1, 4, 16, 0, str(tmp_path))
    means = clip.frames[0].float().mean((1, 2, 3)).numpy()
    np.testing.assert_allclose(means, [40 * i for i in (3, 4, 5, 6)], atol=6)  # frames 4-7, 1-based


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
