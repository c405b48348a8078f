"""The input pipeline: worker processes change no number, the frame cache decodes each video once,
augmentation handles clips, flow and direction-dependent classes."""

import re
import time

import pytest
import torch

from prernn.data import SOURCES, Split
from prernn.data.augment import NO_FLIP, Augment, warp_flow
from prernn.data.loader import Batches
from prernn.data.synthetic_motion import GESTURES
from prernn.trial import run_trial
from tests import datasets


def _action_cfg(root, **data):
    return {"task": "action", "seed": 0,
            "data": {"source": "ucf101", "root": str(root), "train_videos": None, "test_videos": None, "frames": 2,
                     "flow_stack": 2, "size": 32, **data},
            "backbone": {"name": "mini_resnet", "pretrained": "none"},
            "model": {"model": "prernn", "cell": "vrnn", "variant": "gate", "input_init": "pretrained"},
            "train": {"epochs": 2, "batch_size": 2, "lr": 0.01, "schedule": "constant"}}


def _rows(result):
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in result["history"]]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    datasets.ucf101(root, "jpegs_256")
    return root


def test_zero_and_two_workers_give_identical_metrics(ucf, tmp_path):
    quiet = lambda m: None  # noqa: E731
    a = run_trial(_action_cfg(ucf, workers=0, augment=True), tmp_path / "a", log=quiet)
    b = run_trial(_action_cfg(ucf, workers=2, augment=True), tmp_path / "b", log=quiet)
    assert _rows(a) == _rows(b)
    assert a["history"][0]["train_loss"] > 0


def test_batches_from_workers_are_the_batches_read_here(ucf):
    split = SOURCES["ucf101"]("train", videos=None, frames=2, size=32, seed=0, root=str(ucf), flow_stack=2)
    order = torch.tensor([2, 0, 1])
    augment = Augment(flow=True)
    here = list(Batches(split.stream("temporal"), 2, 0, augment=augment).epoch(order, 5, True))
    there = Batches(split.stream("temporal"), 2, 2, augment=augment)
    assert there.loader is not None  # real videos are read by worker processes
    for _ in range(2):  # persistent workers, epoch after epoch
        got = list(there.epoch(order, 5, True))
        assert len(got) == len(here) == 2
        assert all(torch.equal(x, y) and torch.equal(s, t) for (x, s), (y, t) in zip(here, got))
    assert not torch.equal(here[0][0], split.flow[[2, 0]])  # augmented


# a 300VW trial in its own process, every decoding of a video logged: the processes share nothing but the cache
TRIAL = """
import json, sys
from prernn.data import vw300
from prernn.trial import run_trial

cfg, run_dir, log = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
real = vw300.load_crops
def counted(video, size):
    with open(log, "a") as f:
        f.write(f"{video.dir}\\n")
    return real(video, size)
vw300.load_crops = counted
run_trial(cfg, run_dir, log=lambda m: None)
"""


def _face_cfg(root, **data):
    return {"task": "face", "seed": 0,
            "data": {"source": "300vw", "root": str(root), "train_videos": None, "test_videos": None, "frames": 3,
                     "size": 32, "augment": True, **data},
            "backbone": {"name": "mini_vgg", "pretrained": "none"},
            "model": {"model": "prernn", "cell": "gru", "variant": "gate", "input_init": "pretrained"},
            "train": {"epochs": 2, "batch_size": 2, "lr": 0.01, "schedule": "constant"}}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("300vw")
    datasets.vw300(root, size=48, n=12)  # one training and one test video
    return root


def _trials(cfgs, tmp_path, log):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", TRIAL, json.dumps(cfg), str(tmp_path / f"{log.stem}{i}"), str(log)],
                              cwd=root) for i, cfg in enumerate(cfgs)]
    assert [p.wait(timeout=300) for p in procs] == [0] * len(cfgs)
    return log.read_text().splitlines()


def test_the_frame_cache_decodes_each_video_once_while_two_trials_read_it(faces, tmp_path):
    cfg = _face_cfg(faces, cache_dir=str(tmp_path / "cache"), workers=1)
    loads = _trials([cfg, cfg], tmp_path, tmp_path / "cached.txt")
    assert len(loads) == len(set(loads)) == 2  # the training and the test video, once each
    assert len(list((tmp_path / "cache" / "frames").glob("*.npy"))) == 2
    # without the cache each process (trial, data-loader worker) decodes again
    assert len(_trials([_face_cfg(faces, workers=1)] * 2, tmp_path, tmp_path / "uncached.txt")) > 2


def test_a_300vw_trial_gives_the_same_numbers_with_workers_and_the_frame_cache(faces, tmp_path):
    quiet = lambda m: None  # noqa: E731
    a = run_trial(_face_cfg(faces, workers=0), tmp_path / "a", log=quiet)
    b = run_trial(_face_cfg(faces, workers=2, cache_dir=str(tmp_path / "cache")), tmp_path / "b", log=quiet)
    assert _rows(a) == _rows(b)
    last = a["history"][-1]
    assert last["test_loss_cat1"] == last["test_loss"] > 0  # the one test video is of category 1


@pytest.mark.parametrize("source", ["ucf101", "nvgesture"])
def test_training_steps_are_drawn_afresh_every_epoch_and_testing_is_fixed(source, tmp_path):
    datasets.ucf101(tmp_path, "jpegs_256", n=40) if source == "ucf101" else datasets.nvgesture(tmp_path, n=40)
    kw = dict(videos=None, frames=3, size=32, seed=0, root=str(tmp_path), flow_stack=2, clip_frames=4)
    train, test = SOURCES[source]("train", **kw), SOURCES[source]("test", **kw)
    assert test.redraw is None and train.redraw is not None
    a = train.redraw(1)
    assert torch.equal(a.frames[0], train.redraw(1).frames[0])  # the epoch's seed decides
    assert any(not torch.equal(a.frames[0], train.redraw(seed).frames[0]) for seed in range(2, 8))
    assert torch.equal(a.targets, train.targets)


def test_the_frame_cache_gives_the_numbers_of_decoding(ucf, tmp_path):
    quiet = lambda m: None  # noqa: E731
    a = run_trial(_action_cfg(ucf, workers=0), tmp_path / "a", log=quiet)
    b = run_trial(_action_cfg(ucf, workers=0, cache_dir=str(tmp_path / "cache")), tmp_path / "b", log=quiet)
    assert _rows(a) == _rows(b)


# ------------------------------------------------------------------ augmentation

FLIP = {"s": 1.0, "tx": 0.0, "ty": 0.0, "flip": True}


def test_a_flipped_flow_field_has_its_x_component_negated():
    flow = torch.full((1, 4, 8, 8), 128, dtype=torch.uint8)
    flow[:, 0::2] = 128 + 10  # u: moving right
    flow[:, 1::2] = 128 - 6  # v: moving up
    out = warp_flow(flow, FLIP)
    assert (out[:, 0::2] == 128 - 10).all() and (out[:, 1::2] == 128 - 6).all()
    zoom = warp_flow(flow, {**FLIP, "flip": False, "s": 1.5})  # a zoom magnifies the motion too
    assert zoom[0, 0, 4, 4] == 128 + 15 and zoom[0, 1, 4, 4] == 128 - 9


def test_gesture_clips_augment_and_direction_dependent_classes_are_relabelled():
    split = SOURCES["synthetic_gesture"]("train", videos=40, frames=2, size=16, seed=0, clip_frames=4)
    augment = Augment(mirror=split.mirror)
    flipped = 0
    for i in range(len(split)):
        frames, label = split.frames[i], split.targets[i]
        out, new = augment(frames, label, torch.Generator().manual_seed(i))
        assert out.shape == frames.shape and out.dtype == torch.uint8  # (T, C, L, H, W) clips
        a, b = GESTURES[int(label)]
        if int(new) != int(label):
            flipped += 1
            swap = {"right": "left", "left": "right", "circle_cw": "circle_ccw", "circle_ccw": "circle_cw"}
            assert GESTURES[int(new)] == (swap[a], swap[b])
    assert flipped > 0


def test_a_class_that_may_not_flip_is_never_flipped():
    frames = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    never = Augment(mirror=(NO_FLIP,) * 3)
    free = Augment()
    flips = 0
    for seed in range(20):
        out, label = never(frames, torch.tensor(1), torch.Generator().manual_seed(seed))
        kept, _ = free(frames, torch.tensor(1), torch.Generator().manual_seed(seed))
        assert int(label) == 1
        mapped, _ = Augment(mirror=(0, 1, 2))(frames, torch.tensor(1), torch.Generator().manual_seed(seed))
        flips += not torch.equal(out, kept)
        assert torch.equal(mapped, kept)  # a class that maps to itself flips as usual
    assert flips > 0  # some draws wanted a flip, and the never-flip class refused it


def test_gesture_trial_trains_with_augmentation(tmp_path):
    cfg = {"task": "gesture", "seed": 0,
           "data": {"source": "synthetic_gesture", "train_videos": 4, "test_videos": 2, "frames": 2, "size": 32,
                    "clip_frames": 16, "augment": True},
           "backbone": {"name": "mini_c3d", "pretrained": "none"},
           "model": {"model": "traditional", "cell": "gru", "hidden_dim": 8},
           "train": {"epochs": 1, "batch_size": 2, "lr": 0.01, "schedule": "constant"}}
    result = run_trial(cfg, tmp_path, log=lambda m: None)
    assert result["history"][0]["train_loss"] > 0


def test_split_views_keep_the_mirror():
    s = Split(torch.zeros(4, 1, 1, 2, 2, dtype=torch.uint8), torch.arange(4), torch.zeros(4, 1, 2, 2, 2), (1, 0, 2, 3))
    assert s.subset(range(2)).mirror == s.stream("temporal").mirror == s.stream("spatial").mirror == (1, 0, 2, 3)



# ------------------------------------------------------------------ feeding the model


def test_the_frame_cache_is_filled_before_the_first_epoch(ucf, tmp_path):
    from prernn.data.loader import warm

    split = SOURCES["ucf101"]("test", videos=None, frames=2, size=32, seed=0, root=str(ucf), flow_stack=2)
    cached = split.cached(tmp_path / "cache")
    said = []
    for frames in (cached.frames, cached.flow):
        assert not any(frames.cache_file(i).is_file() for i in range(len(frames)))
        assert warm(frames, 2, said.append) == len(frames)
        assert all(frames.cache_file(i).is_file() for i in range(len(frames)))
        assert torch.equal(frames[list(range(len(frames)))], split.stream("spatial").frames[:len(frames)]
                           if frames is cached.frames else split.flow[:len(frames)])
    assert len(list((tmp_path / "cache" / "frames").glob("*.npy"))) == 2 * len(split)
    assert said[0].startswith(f"frame cache: decoding {len(split)} video(s)") and "2 process(es)" in said[0]
    assert warm(cached.frames, 2, said.append) == 0 and len(said) == 4  # all there: nothing read, nothing said
    assert warm(split.frames, 2, said.append) == 0  # no cache, nothing to fill


def test_a_300vw_trial_decodes_each_video_into_the_cache_before_training(faces, tmp_path):
    """Its training clips are drawn afresh every epoch, each from a whole decoded video: the
    warm-up decodes every video once (one cache file per video, not per clip)."""
    said = []
    cfg = _face_cfg(faces, cache_dir=str(tmp_path / "cache"), workers=1)
    cfg["train"]["epochs"] = 1
    run_trial(cfg, tmp_path / "run", log=said.append)
    decoding = [i for i, m in enumerate(said) if m.startswith("frame cache: decoding")]
    training = next(i for i, m in enumerate(said) if m.startswith("training on"))
    assert len(decoding) == 2 and all(i < training for i in decoding)  # the training video, then the test one
    assert all("decoding 1 video(s)" in said[i] for i in decoding)
    assert len(list((tmp_path / "cache" / "frames").glob("*.npy"))) == 2


def test_a_trial_starved_by_its_input_says_so(ucf, tmp_path, monkeypatch):
    from prernn.data import ucf101

    slow = ucf101.load_flow
    monkeypatch.setattr(ucf101, "load_flow", lambda *a: time.sleep(0.2) or slow(*a))
    said = []
    cfg = _action_cfg(ucf, workers=0)
    cfg["train"]["epochs"] = 2
    run_trial(cfg, tmp_path / "run", log=said.append)
    warned = [m for m in said if m.startswith("warning:")]
    assert len(warned) == 1  # the temporal stream's first epoch, once
    assert re.search(r"the temporal stream waited for its input \d+% of epoch 0: videos were read at \d+ "
                     r"frames/s, the model trains at \d+ frames/s\. .*data\.workers is 0 now\) or keep decoded "
                     r"frames with data\.cache_dir", warned[0])


def test_data_in_memory_never_warns_of_a_slow_input(tmp_path, monkeypatch):
    said = []
    cfg = {"task": "face", "seed": 0,
           "data": {"source": "synthetic_face", "train_videos": 4, "test_videos": 2, "frames": 2, "size": 32,
                    "augment": True},
           "backbone": {"name": "mini_vgg", "pretrained": "none"},
           "model": {"model": "traditional", "cell": "gru", "hidden_dim": 8},
           "train": {"epochs": 1, "batch_size": 2, "lr": 0.01, "schedule": "constant"}}
    monkeypatch.setattr("prernn.trial.INPUT_WAIT", -1.0)  # any wait at all would warn, if it were checked
    run_trial(cfg, tmp_path, log=said.append)
    assert not [m for m in said if m.startswith("warning:")]
