"""What a seed drives: initialisation, data order, dropout and augmentation each change with
it (and repeat with it), two videos of one epoch get their own transforms, and with
``data.resample`` each replicate also draws its own videos (the arms of a seed share them)."""

import pytest
import torch

from launch.expand import expand
from launch.spec import SpecError, load_spec
from prernn import trial as trial_mod
from prernn.data import Split
from prernn.data.augment import Augment
from prernn.data.loader import Batches, _Batch

from .conftest import TOY

REAL = trial_mod.make_streams, Batches.epoch, trial_mod.train_epoch  # before any test wraps them


def _config(write_spec, seed: int, **data):
    spec = dict(TOY, data={**TOY["data"], "augment": True, **data}, seeds=[seed],
                train={**TOY["train"], "epochs": 1}, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}])
    (t,) = expand(load_spec(write_spec(spec, filename=f"s{seed}.yaml")))
    return t.config


def _drives(write_spec, tmp_path, monkeypatch, seed: int, name: str) -> dict:
    """Run one toy trial and record what its seed reached: the initial weights, the order and
    epoch seed (augmentation) its batches were asked for, the global RNG's seed (dropout)."""
    seen: dict = {}
    make, epoch, train_epoch = REAL

    def made(*a, **kw):
        streams = make(*a, **kw)
        seen["init"] = [p.detach().clone() for s in streams for p in s.net.parameters()]
        return streams

    def asked(self, order=None, seed=None, augment=False):
        if augment:
            seen["order"], seen["augment_seed"] = order.tolist(), seed
        return epoch(self, order, seed, augment)

    def trained(*a, **kw):
        seen["dropout_seed"] = torch.initial_seed()
        return train_epoch(*a, **kw)

    monkeypatch.setattr(trial_mod, "make_streams", made)
    monkeypatch.setattr(Batches, "epoch", asked)
    monkeypatch.setattr(trial_mod, "train_epoch", trained)
    trial_mod.run_trial(_config(write_spec, seed), tmp_path / name, log=lambda *_: None)
    return seen


def test_a_seed_drives_init_data_order_dropout_and_augmentation(write_spec, tmp_path, monkeypatch):
    a, again, b = (_drives(write_spec, tmp_path, monkeypatch, s, n) for s, n in ((0, "a"), (0, "again"), (1, "b")))
    assert set(a) == {"init", "order", "augment_seed", "dropout_seed"}
    assert all(torch.equal(x, y) for x, y in zip(a["init"], again["init"]))
    assert not all(torch.equal(x, y) for x, y in zip(a["init"], b["init"]))  # initialisation
    assert a["order"] == again["order"] and a["order"] != b["order"]  # data order
    assert a["dropout_seed"] == again["dropout_seed"] != b["dropout_seed"]  # dropout
    assert a["augment_seed"] == again["augment_seed"] != b["augment_seed"]  # augmentation


def test_two_videos_of_one_epoch_get_their_own_transforms():
    """The same video twice in one batch: each copy is warped by its own draw."""
    frames = torch.randint(0, 255, (1, 4, 3, 16, 16), dtype=torch.uint8).expand(2, -1, -1, -1, -1).contiguous()
    split = Split(frames=frames, targets=torch.zeros(2, dtype=torch.long))
    out, _ = _Batch(split, Augment())[([0, 1], 7, True)]
    assert torch.equal(frames[0], frames[1]) and not torch.equal(out[0], out[1])
    again, _ = _Batch(split, Augment())[([0, 1], 7, True)]
    assert torch.equal(out, again)  # and the same draws for the same epoch seed


def test_resample_draws_each_replicates_own_videos_shared_by_the_arms_of_a_seed(write_spec):
    fixed = [trial_mod.load_split(_config(write_spec, s), "train").frames for s in (0, 1)]
    drawn = [trial_mod.load_split(_config(write_spec, s, resample=True), "train").frames for s in (0, 1)]
    assert torch.equal(fixed[0], fixed[1]) and not torch.equal(drawn[0], drawn[1])
    assert torch.equal(drawn[0], fixed[0])  # seed 0 draws from data.seed + 0: the usual videos
    spec = load_spec(write_spec(dict(TOY, data={**TOY["data"], "resample": True}, seeds=[1]), filename="arms.yaml"))
    arms = [trial_mod.load_split(t.config, "test").frames for t in expand(spec)]
    assert len(arms) == 5 and all(torch.equal(x, arms[0]) for x in arms)  # paired: one draw per seed
    assert not torch.equal(arms[0], trial_mod.load_split(_config(write_spec, 0, resample=True), "test").frames)


@pytest.mark.bad_input
def test_resample_refuses_a_fixed_dataset(write_spec):
    spec = dict(TOY, data={"source": "ucf101", "root": "/nowhere", "resample": True})
    with pytest.raises(SpecError, match=r"data\.resample.*redraws a generated source.*'ucf101' is a fixed dataset"):
        expand(load_spec(write_spec(spec)))
