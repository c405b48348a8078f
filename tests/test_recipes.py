"""The paper's three learning-rate schedules, and the gesture stop rule, on real optimisers."""

import pytest
import torch

from prernn.train.recipes import SCHEDULES, step_schedule

from .conftest import TOY


def lrs(schedule, losses, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = SCHEDULES[schedule](opt, **kw)
    out = []
    for loss in losses:
        out.append(opt.param_groups[0]["lr"])
        step_schedule(sched, loss)
    return out


def test_step_every_and_plateau():
    assert lrs("step", [0] * 6, milestones=[2, 4], gamma=0.5) == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert lrs("every", [0] * 5, every=2, gamma=0.5) == [1, 1, 0.5, 0.5, 0.25]
    # divided by 10 once the loss has not improved for `patience` epochs
    got = lrs("plateau", [5, 4, 4, 4, 4, 3, 3, 3, 3], patience=2, gamma=0.1)
    assert got == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01])


def test_min_lr_stops_training(write_spec, tmp_path):
    from launch.expand import expand
    from launch.spec import load_spec
    from prernn.trial import run_trial

    spec = dict(TOY, train=dict(TOY["train"], epochs=10, schedule="every", every=1, gamma=0.1, min_lr=0.0001),
                grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}])
    cfg = expand(load_spec(write_spec(spec)))[0].config
    messages = []
    result = run_trial(cfg, tmp_path, log=messages.append)
    assert [round(r["lr"], 8) for r in result["history"]] == [0.01, 0.001]  # 1e-4 reached: stop
    assert any("lr reached train.min_lr" in m for m in messages)
