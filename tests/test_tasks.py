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
    pred, target = torch.rand(2, 3, t.num_outputs), torch.rand(2, 3, t.num_outputs)
    assert tuple(t.metrics(pred, target)) == t.metric_names and t.primary in t.metric_names


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
