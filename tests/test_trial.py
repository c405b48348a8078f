"""run_trial: resumes from its checkpoint to the same numbers; NaN is detected."""

import pytest
import torch

from launch.expand import expand
from launch.spec import load_spec
from prernn.trial import Diverged, run_trial

from .conftest import TOY


def config(write_spec, **train):
    spec = dict(TOY, train=dict(TOY["train"], epochs=4, schedule="step", milestones=[2], **train),
                grid=[{"model": "prernn", "cell": "gru"}])
    return expand(load_spec(write_spec(spec)))[0].config


def test_resume_gives_the_same_result_as_an_uninterrupted_run(write_spec, tmp_path):
    cfg = config(write_spec)
    whole = run_trial(cfg, tmp_path / "a", log=lambda m: None)
    first = run_trial(cfg.replace(train=cfg.train.replace(epochs=2)), tmp_path / "b", log=lambda m: None)
    assert len(first["history"]) == 2
    resumed = run_trial(cfg, tmp_path / "b", log=lambda m: None)  # picks up after epoch 2
    strip = lambda h: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])
    assert resumed["history"][2]["lr"] == whole["history"][2]["lr"] == 0.005  # the schedule resumed too


def test_checkpoint_loads_with_weights_only(write_spec, tmp_path):
    run_trial(config(write_spec), tmp_path, log=lambda m: None)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(state) == {"streams", "history"} and len(state["history"]) == 4
    assert set(state["streams"]["spatial"]) == {"model", "optimizer", "schedule", "scaler", "stopped"}


def test_nan_loss_raises_diverged(write_spec, tmp_path):
    with pytest.raises(Diverged, match="not finite|loss is"):
        run_trial(config(write_spec, lr=1e12), tmp_path, log=lambda m: None)


def test_an_epoch_reads_the_host_once_every_few_steps(write_spec, tmp_path, monkeypatch):
    """Reading a tensor on the host (``item``, ``bool``, ``int``, ``float``) waits for the GPU:
    an epoch of 20 steps may do it once per CHECK_EVERY steps and twice at its end (the
    divergence check, the mean loss), not once or twice a step."""
    import math

    from prernn import trial as trial_mod
    from prernn.train import loop

    reads = []
    real = {name: getattr(torch.Tensor, name) for name in ("item", "__bool__", "__int__", "__float__")}
    real_epoch = loop.train_epoch

    def counted(*a, **kw):
        for name, fn in real.items():
            monkeypatch.setattr(torch.Tensor, name, lambda self, fn=fn, name=name: reads.append(name) or fn(self))
        try:
            return real_epoch(*a, **kw)
        finally:
            for name, fn in real.items():
                monkeypatch.setattr(torch.Tensor, name, fn)

    monkeypatch.setattr(trial_mod, "train_epoch", counted)
    spec = dict(TOY, data=dict(TOY["data"], train_videos=40), train=dict(TOY["train"], epochs=1, batch_size=2),
                grid=[{"model": "prernn", "cell": "lstm"}])
    run_trial(expand(load_spec(write_spec(spec)))[0].config, tmp_path, log=lambda m: None)
    assert 0 < len(reads) <= math.ceil(20 / loop.CHECK_EVERY) + 2, reads


def test_a_nan_loss_stops_the_epoch_within_a_few_steps():
    """The first non-finite loss is found at the next check, not only at the epoch's end."""
    from dataclasses import replace

    from prernn.data import Split
    from prernn.data.loader import Batches
    from prernn.tasks import TASKS
    from prernn.train import loop

    toy, steps = TASKS["toy"], []

    def loss(pred, target):  # NaN from the third step on
        steps.append(len(steps))
        return toy.loss(pred, target) * (float("nan") if len(steps) >= 3 else 1.0)

    net = torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Linear(3 * 8 * 8, toy.num_outputs))  # (B, T, 2)
    data = Batches(Split(frames=torch.randint(0, 255, (64, 2, 3, 8, 8), dtype=torch.uint8),
                         targets=torch.zeros(64, 2, toy.num_outputs)), batch_size=2)
    with pytest.raises(Diverged, match="from batch 2 on"):
        loop.train_epoch(net, torch.optim.SGD(net.parameters(), lr=0.01), data, replace(toy, loss=loss), epoch_seed=0)
    assert len(steps) == loop.CHECK_EVERY  # stopped at the first check, not after all 32 steps
