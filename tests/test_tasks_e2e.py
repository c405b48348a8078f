"""Gesture and action end to end: the shipped mini sweeps (trimmed), the paper profiles'
dry runs, and one short paper-profile trial per task on fabricated data in the real
formats, with weights files written here standing in for the published ones."""

import os

import pandas as pd
import pytest
import torch

from . import datasets
from .conftest import ROOT, sweep

TRIM = ["train.epochs=2", "train.milestones=[]", "data.train_videos=8", "data.test_videos=4", "data.frames=2",
        "seeds=[0, 1]"]
# short pre-trainings that their gates accept on this machine (probe accuracy against a random backbone's):
# gesture 51 s (0.80 vs 0.575); action 44 s for both streams (spatial 0.25 vs 0.15, temporal 0.575 vs 0.375)
PRETRAIN = {"gesture.yaml": {"examples": 3000, "validation": 100, "epochs": 2, "probe_videos": 160, "probe_steps": 5},
            "table3.yaml": {"examples": 3000, "validation": 200, "epochs": 3, "probe_videos": 160, "probe_steps": 2}}


def run(spec: str, results, *extra, env=None):
    args = [ROOT / "sweeps" / spec, "--results-dir", results, *extra]
    return sweep(*args, env=env, timeout=1200)


def trimmed(spec: str, *items):
    pretrain = [f"backbone.pretrain.{k}={v}" for k, v in PRETRAIN[spec].items()]
    return [a for item in (*TRIM, *pretrain, *items) for a in ("--set", item)]


@pytest.mark.slow
def test_mini_table3_runs_every_trial_and_prints_table3(tmp_path):
    out = run("table3.yaml", tmp_path / "t3", *trimmed("table3.yaml", "train.temporal_epochs=3",
                                                             "train.schedule=every", "train.every=1"))
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(tmp_path / "t3" / "trials")
    assert len(df) == 32 and (df.status == "completed").all()  # (13 of the paper's + 3 reference rows) x 2 seeds
    assert not ((df["model.cell"] == "vrnn") & (df["model.variant"] == "sih")).any()
    trained = df[~df["model.model"].isin(["constant", "probe"])]  # those two fit once, no epochs
    assert trained.epochs_done.eq(3).all()  # the temporal stream's 3 epochs, the spatial stream's 2
    for col in ("test_accuracy", "test_accuracy_spatial", "test_accuracy_temporal"):
        assert df[col].between(0, 1).all()
    epochs = pd.read_parquet(tmp_path / "t3" / "epochs")
    lr = epochs[epochs.id.isin(trained.id) & (epochs.epoch == 1)].set_index("id").lr
    chosen = trained.set_index("id")["train.lr"]  # each family's lr, frozen in the spec
    assert len(lr) == len(trained) and (lr == chosen[lr.index] / 2).all()  # the spatial stream's, halved every epoch
    lines = out.stdout.splitlines()
    assert "| .927" in next(l for l in lines if l.startswith(" PreRNN pre "))  # the paper's VRNN value beside ours
    assert next(l for l in lines if l.startswith(" SIH pre ")).split()[2] == "n/a"  # VRNN has no SIH
    assert sum(" SIH pre > SIH rand " in l for l in lines) == 2  # LSTM and GRU only


@pytest.mark.slow
def test_mini_gesture_sweep_runs_every_trial(tmp_path):
    out = run("gesture.yaml", tmp_path / "g", *trimmed("gesture.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(tmp_path / "g" / "trials")
    assert len(df) == 48 and (df.status == "completed").all() and df["model.matched"].sum() == 6  # 24 x 2 seeds
    assert df.test_accuracy.between(0, 1).all() and "pre-training mini_c3d for gesture" in out.stdout


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "sweeps").glob("*.yaml")))
def test_every_paper_profile_dry_run_validates_and_writes_nothing(spec, tmp_path):
    home = tmp_path / "home"  # the paper profiles' frame cache lives under ~/.cache: nothing may appear there
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PRERNN_CACHE": str(home / "cache")}
    out = sweep(ROOT / "sweeps" / spec, "--profile", "paper", "--dry-run", "--results-dir", tmp_path / "results",
                env=env)
    assert out.returncode == 0, out.stderr
    assert "[paper profile]" in out.stdout
    assert not (tmp_path / "results").exists() and not any(home.iterdir())


@pytest.mark.parametrize("spec,n,labels", [
    ("table3.yaml", 13, ["lstm prernn-sih layer4 random-init", "vrnn prernn-gate layer4", "gru traditional h=512 x2"]),
    ("gesture.yaml", 21, ["vrnn traditional h=4096 x2", "gru prernn-gate fc6/fc7", "lstm traditional h=matched="]),
    # the paper's "Similar" column, counted as the paper profile counts (weight matrices only)
    ("table1.yaml", 21, ["vrnn traditional h=matched=2740 x2", "lstm traditional h=matched=5761 x2",
                         "gru traditional h=matched=5497 x2"]),
])
def test_paper_profile_dry_runs_list_the_papers_trials(spec, n, labels):
    out = sweep(ROOT / "sweeps" / spec, "--profile", "paper", "--dry-run")
    assert out.returncode == 0, out.stderr
    # the paper's n networks and our three reference rows
    assert f": {n + 3} trials" in out.stdout and "[paper profile]" in out.stdout
    for label in labels + ["constant", "linear probe", "per-frame CNN"]:
        assert label in out.stdout
    rows = [line for line in out.stdout.splitlines() if "prernn-" in line or "traditional" in line]
    assert len(rows) == n and all("auto (1 GPU)" in r and "fp32" in r for r in rows)  # device, precision
    assert "vrnn prernn-sih" not in out.stdout


def _weights(directory, name: str, filename: str) -> None:
    """A randomly initialised network saved under the published file's name and key names."""
    import torchvision

    from prernn.backbones.c3d import C3D

    net = {"vgg16": torchvision.models.vgg16, "resnet50": torchvision.models.resnet50, "c3d": C3D}[name]()
    torch.save(net.state_dict(), directory / filename)


@pytest.mark.slow
@pytest.mark.parametrize("task,spec,fabricate,weights,overrides", [
    ("face", "table1.yaml", datasets.vw300, ("vgg16", "vgg16-397923af.pth"),
     ["grid=[{model: prernn, cell: vrnn, layers: [fc6, fc7]}]", "data.size=32", "data.frames=3"]),
    ("gesture", "gesture.yaml", datasets.nvgesture, ("c3d", "c3d.pickle"),
     ["grid=[{model: traditional, cell: gru, hidden_dim: 64}]", "data.frames=1"]),
    ("action", "table3.yaml", lambda root: datasets.ucf101(root, "jpegs_256"), ("resnet50", "resnet50-0676ba61.pth"),
     # batch norm needs more than a few values per channel: 3 videos x 2 steps of 2 x 2 maps in layer4
     ["grid=[{model: prernn, cell: vrnn, input_init: pretrained}]", "data.size=64", "data.frames=2",
      "data.flow_stack=2", "train.temporal_epochs=2", "train.batch_size=3"]),
])
def test_one_paper_profile_trial_per_task_on_fabricated_data(tmp_path, task, spec, fabricate, weights, overrides):
    data, wdir = tmp_path / "data", tmp_path / "weights"
    data.mkdir()
    wdir.mkdir()
    fabricate(data)
    _weights(wdir, *weights)
    env = {**os.environ, "PRERNN_WEIGHTS": str(wdir)}
    # the paper profiles ask for a GPU; here the trial runs on this machine's CPU, so it must not
    sets = [a for item in ["train.epochs=1", "train.batch_size=2", "resources.gpus=0", *overrides]
            for a in ("--set", item)]
    out = run(spec, tmp_path / "results", "--profile", "paper", "--data-root", data, *sets, env=env)
    df = pd.read_parquet(tmp_path / "results" / "trials")
    assert out.returncode == 0, out.stdout + out.stderr + str(df.error.tolist())
    assert len(df) == 1 and df.status.iloc[0] == "completed" and df["data.root"].iloc[0] == str(data)
    assert df["backbone.pretrained"].iloc[0] == "default" and df.profile.iloc[0] == "paper"
    metric = "test_loss" if task == "face" else "test_accuracy"
    assert df[metric].notna().all()
