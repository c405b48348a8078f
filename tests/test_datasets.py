"""The real datasets' loaders on tiny copies fabricated in their on-disk formats: read back exactly."""

import re

import numpy as np
import pytest
import torch

from prernn.data import SOURCES, LazyFrames
from prernn.data.video import DataFormatError

from . import datasets


def _chw(img):  # (H, W, 3) -> (3, H, W)
    return img.transpose(2, 0, 1)


def test_lazy_frames_index_like_a_tensor():
    x = torch.arange(5 * 2 * 3, dtype=torch.uint8).reshape(5, 2, 3)
    lazy = LazyFrames(5, (2, 3), lambda i: x[i].numpy())
    assert lazy.shape == (5, 2, 3) and len(lazy) == 5
    assert torch.equal(lazy[1], x[1]) and torch.equal(lazy[1:4], x[1:4]) and torch.equal(lazy[-1], x[-1])
    assert torch.equal(lazy[torch.tensor([4, 0])], x[[4, 0]])
    bad = LazyFrames(2, (2, 3), lambda i: np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"item 0: .*expected uint8 \(2, 3\)"):
        bad[0]


# ------------------------------------------------------------------ nvGesture

def test_nvgesture_clips_come_from_the_listed_colour_range(tmp_path):
    made = datasets.nvgesture(tmp_path)
    train = SOURCES["nvgesture"].__wrapped__("train", videos=None, frames=2, size=32, seed=0, root=str(tmp_path),
                                               clip_frames=4)
    assert train.frames.shape == (2, 2, 3, 4, 32, 32)
    assert train.targets.tolist() == [0, 6]  # from label:, although the second video sits in class_02
    (video, a, _, _), clips = made["train"][0], train.frames[0]  # range 2:10, two clips of 4: frames 2-5, 6-9
    for k, start in enumerate((a, a + 4)):
        expected = np.stack([_chw(video[start + j]) for j in range(4)], axis=1)
        np.testing.assert_array_equal(clips[k].numpy(), expected)


def test_nvgesture_short_range_repeats_its_last_frame(tmp_path):
    made = datasets.nvgesture(tmp_path)
    test = SOURCES["nvgesture"].__wrapped__("test", videos=None, frames=1, size=32, seed=0, root=str(tmp_path),
                                              clip_frames=4)
    video, a, b, _ = made["test"][0]  # range 1:3 is shorter than a clip
    got = test.frames[0][0].numpy()
    for j, frame in enumerate([a, a + 1, b - 1, b - 1]):
        np.testing.assert_array_equal(got[:, j], _chw(video[frame]))


@pytest.mark.bad_input
def test_nvgesture_missing_video_and_list_are_named(tmp_path):
    datasets.nvgesture(tmp_path)
    (tmp_path / "Video_data/class_02/subject4_r0/sk_color.avi").unlink()
    with pytest.raises(FileNotFoundError, match=r"class_02/subject4_r0/sk_color.avi \(listed in .*train"):
        SOURCES["nvgesture"].__wrapped__("train", videos=None, frames=1, size=32, seed=0, root=str(tmp_path))
    (tmp_path / "nvgesture_test_correct_cvpr2016_v2.lst").unlink()
    with pytest.raises(FileNotFoundError, match="nvGesture list missing: .*nvgesture_test_correct"):
        SOURCES["nvgesture"].__wrapped__("test", videos=None, frames=1, size=32, seed=0, root=str(tmp_path))


@pytest.mark.bad_input
def test_an_undecodable_video_is_a_clear_error(tmp_path):
    datasets.nvgesture(tmp_path)
    (tmp_path / "Video_data/class_01/subject3_r0/sk_color.avi").write_bytes(b"not a video")
    train = SOURCES["nvgesture"].__wrapped__("train", videos=None, frames=1, size=32, seed=0, root=str(tmp_path))
    with pytest.raises(DataFormatError, match=r"subject3_r0/sk_color.avi"):
        train.frames[0]


# ------------------------------------------------------------------ UCF101

@pytest.mark.parametrize("layout", ["videos", "jpegs_256"])
def test_ucf101_rgb_and_flow_read_back(tmp_path, layout):
    made = datasets.ucf101(tmp_path, layout)
    split = SOURCES["ucf101"].__wrapped__("train", videos=None, frames=3, size=32, seed=0, root=str(tmp_path),
                                            flow_stack=2)
    assert split.frames.shape == (3, 3, 3, 32, 32) and split.flow.shape == (3, 3, 4, 32, 32)
    assert split.targets.tolist() == [0, 1, 2]
    name = "v_HandStandPushups_g01_c02"  # the list's spelling; on disk it is HandstandPushups
    rgb, label = made[name]
    n_flow = len(rgb) - 1  # 9 flow fields: steps start at 0, 3, 7 (evenly over 9 - 2 + 1 starts)
    starts = [round(x) for x in np.linspace(0, n_flow - 2, 3)]
    for t, s in enumerate(starts):
        want = (_chw(rgb[s]) if layout == "videos"
                else datasets.read_jpg(tmp_path / "jpegs_256" / name / f"frame{s + 1:06d}.jpg"))
        np.testing.assert_array_equal(split.frames[1][t].numpy(), want)
        for j in range(2):
            for c, axis in enumerate("uv"):
                flow = datasets.read_jpg(tmp_path / "tvl1_flow" / axis / name / f"frame{s + j + 1:06d}.jpg")
                np.testing.assert_array_equal(split.flow[1][t, 2 * j + c].numpy(), flow[0])


def test_ucf101_unreadable_frame_is_skipped_with_a_counted_warning(tmp_path):
    datasets.ucf101(tmp_path, "jpegs_256")
    (tmp_path / "jpegs_256/v_YoYo_g09_c03/frame000001.jpg").write_bytes(b"\xff\xd8 truncated")
    split = SOURCES["ucf101"].__wrapped__("train", videos=None, frames=3, size=32, seed=0, root=str(tmp_path),
                                            flow_stack=2)
    with pytest.warns(UserWarning, match=r"v_YoYo_g09_c03: 1 frames did not decode"):
        x = split.frames[2]
    nearest = datasets.read_jpg(tmp_path / "jpegs_256/v_YoYo_g09_c03/frame000002.jpg")
    np.testing.assert_array_equal(x[0].numpy(), nearest)


@pytest.mark.parametrize("breakage,error", [
    (lambda r: (r / "UCF-101/YoYo/v_YoYo_g09_c03.avi").unlink(), r"missing: .*UCF-101/YoYo/v_YoYo_g09_c03.avi"),
    (lambda r: __import__("shutil").rmtree(r / "tvl1_flow"), r"optical flow missing: .*tvl1_flow"),
    (lambda r: __import__("shutil").rmtree(r / "tvl1_flow/v/v_YoYo_g09_c03"), r"frames missing: .*tvl1_flow/v/v_YoYo"),
    (lambda r: (r / "ucfTrainTestlist/trainlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi 4\n"),
     r"trainlist01.txt:1: unknown class 'Juggling'"),
    (lambda r: (r / "ucfTrainTestlist/classInd.txt").unlink(), r"no classInd.txt"),
])
@pytest.mark.bad_input
def test_ucf101_broken_datasets_are_clear_errors(tmp_path, breakage, error):
    datasets.ucf101(tmp_path, "videos")
    breakage(tmp_path)
    with pytest.raises((FileNotFoundError, DataFormatError), match=error):
        SOURCES["ucf101"].__wrapped__("train", videos=None, frames=2, size=32, seed=0, root=str(tmp_path))


def test_ucf101_subset_is_drawn_from_the_seed(tmp_path):
    datasets.ucf101(tmp_path, "jpegs_256")
    a = SOURCES["ucf101"].__wrapped__("train", videos=2, frames=2, size=32, seed=3, root=str(tmp_path), flow_stack=1)
    b = SOURCES["ucf101"].__wrapped__("train", videos=2, frames=2, size=32, seed=3, root=str(tmp_path), flow_stack=1)
    assert len(a) == 2 and a.targets.tolist() == b.targets.tolist()


# ------------------------------------------------------------------ 300VW extracted frames

def _crops(rgb, marks, size):
    """What the loader must return: each frame cropped around its landmarks, the landmarks in the crop."""
    from PIL import Image

    from prernn.data.vw300 import crop, crop_box, to_crop

    marks = np.round(marks, 3).astype(np.float32)  # as the .pts files hold them
    boxes = [crop_box(m) for m in marks]
    frames = np.stack([crop(Image.fromarray(img), b, size) for img, b in zip(rgb, boxes)])
    return frames, np.stack([to_crop(m, b) for m, b in zip(marks, boxes)]).reshape(len(marks), 136)


def test_300vw_extracted_frame_folders_read_back_exactly(tmp_path):
    made = datasets.vw300(tmp_path, as_frames=True)
    train = SOURCES["300vw"].__wrapped__("train", videos=None, frames=6, size=32, seed=0, root=str(tmp_path))
    frames, targets = _crops(*made[1], 32)
    assert train.frames.shape == (1, 6, 3, 32, 32)
    np.testing.assert_array_equal(train.frames[0].numpy(), frames)
    np.testing.assert_allclose(train.targets[0].numpy(), targets, atol=1e-6)


def test_300vw_video_reads_back_exactly(tmp_path):
    made = datasets.vw300(tmp_path)
    test = SOURCES["300vw"].__wrapped__("test", videos=None, frames=6, size=32, seed=0, root=str(tmp_path))
    frames, targets = _crops(*made[datasets.CATEGORIES[1][0]], 32)
    np.testing.assert_array_equal(test.frames[0].numpy(), frames)
    np.testing.assert_allclose(test.targets[0].numpy(), targets, atol=1e-6)


def test_generated_sources_refuse_every_video():
    with pytest.raises(ValueError, match=re.escape("give a number of videos, not null")):
        SOURCES["synthetic_gesture"].__wrapped__("train", videos=None, frames=1, size=32, seed=0)
