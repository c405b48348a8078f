"""Tasks and the synthetic face data: metrics by hand, determinism, the landmark layout."""

import numpy as np
import pytest
import torch

from prernn.data import SOURCES
from prernn.data.synthetic_face import MIRROR, face_template
from prernn.tasks import TASKS


@pytest.mark.parametrize("name", TASKS.names())
def test_metrics_return_the_declared_columns(name):
    t = TASKS[name]
    pred = torch.rand(2, 3, t.num_outputs)
    if t.mode == "max":  # classification: one class per video
        target = torch.tensor([0, 4])
        m = t.metrics({s: pred for s in t.streams} if len(t.streams) > 1 else pred, target)
    else:
        pred = torch.rand(3, 3, t.num_outputs)  # three sequences, one per 300VW test category
        m = t.metrics(pred, torch.rand(3, 3, t.num_outputs), groups=torch.tensor([1, 2, 3]))
    assert sorted(m) == sorted(t.metric_names) and t.primary in t.metric_names


def test_classification_metrics_by_hand():
    from prernn.tasks import fused_metrics

    logits = torch.full((2, 2, 25), -10.0)
    logits[0, :, 3] = 10  # video 0: class 3 at both steps
    logits[1, 0, 1], logits[1, 1, 2] = 10, 9.5  # video 1: the steps disagree; the average favours class 1
    m = TASKS["gesture"].metrics(logits, torch.tensor([3, 2]))
    assert m["test_accuracy"] == 0.5
    assert m["test_loss"] == pytest.approx(np.log(2) / 2, abs=1e-4)  # p(true) = 1 and 1/2
    # two streams: spatial says 1, temporal says 2 more confidently: the fused (mean softmax) says 2
    spatial, temporal = torch.zeros(1, 1, 101), torch.zeros(1, 1, 101)
    spatial[0, 0, 1], temporal[0, 0, 2] = 5, 8
    f = fused_metrics({"spatial": spatial, "temporal": temporal}, torch.tensor([2]))
    assert (f["test_accuracy_spatial"], f["test_accuracy_temporal"], f["test_accuracy"]) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize("source", ["synthetic_gesture", "synthetic_action"])
def test_synthetic_motion_is_deterministic_and_every_class_occurs(source):
    make = SOURCES[source].__wrapped__
    a = make("train", videos=60, frames=3, size=32, seed=1, clip_frames=16, flow_stack=2)
    b = make("train", videos=60, frames=3, size=32, seed=1, clip_frames=16, flow_stack=2)
    test = make("test", videos=60, frames=3, size=32, seed=1, clip_frames=16, flow_stack=2)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.frames, test.frames)
    assert sorted(set(a.targets.tolist())) == list(range(10)) and a.targets.dtype == torch.int64
    if source == "synthetic_gesture":
        assert a.frames.shape == (60, 3, 1, 16, 32, 32) and a.flow is None
    else:
        assert a.frames.shape == (60, 3, 3, 32, 32) and a.flow.shape == (60, 3, 4, 32, 32)


def test_synthetic_flow_is_the_known_motion():
    """A still camera and a walking actor: the flow is zero off the actor and the walk inside it."""
    from prernn.data.synthetic_motion import FLOW_SCALE, FLOW_ZERO, action_videos

    rgb, flow, labels = action_videos(40, 2, 1, 32, seed=3)
    u = (flow[:, :, 0].astype(float) - FLOW_ZERO) / FLOW_SCALE
    v = (flow[:, :, 1].astype(float) - FLOW_ZERO) / FLOW_SCALE
    walk = labels % 5 == 0  # walk: horizontal only
    assert np.abs(v[walk]).max() <= 1 + 1 / FLOW_SCALE  # only the pan (whole pixels) moves vertically
    moving = np.abs(u[walk]) > 0.2
    assert moving.any()


def test_face_metrics_by_hand():
    target = torch.zeros(1, 1, 68, 2)
    target[..., 36, 0], target[..., 45, 0] = 0.2, 0.6  # inter-ocular distance 0.4
    pred = target.clone()
    pred[..., 0, :] += torch.tensor([0.3, 0.4])  # point 0 off by (0.3, 0.4): distance 0.5
    m = TASKS["face"].metrics(pred.flatten(2), target.flatten(2))
    assert m["test_loss"] == pytest.approx(0.5 / 68)
    assert m["test_nme"] == pytest.approx(0.5 / 68 / 0.4)


def test_synthetic_faces_are_deterministic_and_splits_differ():
    a = SOURCES["synthetic_face"].__wrapped__("train", 2, 4, 32, 5)
    b = SOURCES["synthetic_face"].__wrapped__("train", 2, 4, 32, 5)
    test = SOURCES["synthetic_face"].__wrapped__("test", 2, 4, 32, 5)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.frames, test.frames)
    assert a.frames.shape == (2, 4, 1, 32, 32) and a.targets.shape == (2, 4, 136)
    assert 0 < a.targets.min() and a.targets.max() < 1  # the face stays in the frame


def test_landmark_layout_is_ibug68():
    f = face_template()
    mirrored = (f * [-1, 1])[MIRROR]
    np.testing.assert_allclose(mirrored, f, atol=1e-12)  # the left/right permutation of a flip
    assert sorted(MIRROR) == list(range(68)) and all(MIRROR[MIRROR] == np.arange(68))
    assert f[36, 0] < f[39, 0] < f[42, 0] < f[45, 0]  # eye corners left to right
    assert f[8, 1] == f[:, 1].max()  # the chin is the lowest point
    assert f[27, 1] < f[30, 1] < f[51, 1] < f[57, 1]  # bridge, nose tip, upper lip, lower lip
