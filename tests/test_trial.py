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
