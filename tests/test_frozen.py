"""train.freeze_backbone: the conv part stays as pre-trained, its features are computed once
per dataset and shared by the trials; results equal a frozen stem run on the fly."""

import pytest
import torch

import prernn.trial as trial_mod
from prernn.config import DataConfig, TrainConfig
from prernn import backbones


def config(weights, model=None, **train):
    model = model or {"model": "prernn", "cell": "gru", "variant": "gate", "layers": ["fc6", "fc7"],
                      "input_init": "pretrained", "recurrent_init": "zeros", "extra_layers": 0}
    return {"task": "face", "seed": 0,
            "data": DataConfig(source="synthetic_face", train_videos=4, test_videos=2, frames=3, size=32).to_dict(),
            "backbone": {"name": "mini_vgg", "pretrained": str(weights)}, "model": model,
            "train": TrainConfig(epochs=2, batch_size=2, lr=0.01, schedule="constant", freeze_backbone=True,
                                 **train).to_dict()}


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PRERNN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    path = tmp_path / "mini_vgg.pt"
    backbones.save_backbone(backbones.create("mini_vgg"), path)
    return path


def test_cached_features_give_the_results_of_a_frozen_stem_run_on_the_fly(weights, tmp_path, monkeypatch):
    logs = []
    cached = trial_mod.run_trial(config(weights), tmp_path / "a", log=logs.append)
    monkeypatch.setattr(trial_mod, "CACHE_FEATURES", False)
    live = trial_mod.run_trial(config(weights), tmp_path / "b", log=lambda m: None)
    assert sum("computing frozen-backbone features" in m for m in logs) == 2  # train and test split
    for a, b in zip(cached["history"], live["history"]):
        for k in ("train_loss", "test_loss", "test_nme"):
            assert a[k] == pytest.approx(b[k], rel=1e-4)
    assert cached["parameters"] == live["parameters"]
    # the live run's stem is exactly the pre-trained one after training
    stem = {k.removeprefix("backbone.stem.module."): v
            for k, v in torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["streams"]["spatial"]["model"].items()
            if k.startswith("backbone.stem.module.")}
    saved = {k.removeprefix("stem."): v for k, v in torch.load(weights, weights_only=True)["state_dict"].items()
             if k.startswith("stem.")}
    assert stem.keys() == saved.keys() and all(torch.equal(stem[k], saved[k]) for k in stem)


def test_trials_share_the_features(weights, tmp_path, monkeypatch):
    logs = []
    trial_mod.run_trial(config(weights), tmp_path / "a", log=logs.append)

    def no_reading(*a):
        raise AssertionError("the data were read although their features are cached")

    monkeypatch.setattr(trial_mod, "load_split", no_reading)
    traditional = {"model": "traditional", "cell": "lstm", "hidden_dim": 8, "num_layers": 2, "variant": None,
                   "layers": None, "input_init": None, "recurrent_init": None, "extra_layers": None, "matched": False}
    trial_mod.run_trial(config(weights, traditional), tmp_path / "b", log=logs.append)
    assert sum("computing frozen-backbone features" in m for m in logs) == 2  # by the first trial only
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 2


def test_augmented_data_are_not_cached(weights, tmp_path):
    cfg = config(weights)
    cfg["data"]["augment"] = True
    logs = []
    r = trial_mod.run_trial(cfg, tmp_path / "a", log=logs.append)
    assert len(r["history"]) == 2 and not any("features" in m for m in logs)
    assert not (tmp_path / "cache" / "features").exists()
