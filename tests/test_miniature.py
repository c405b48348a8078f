"""The mini profiles as miniatures of the paper's setting: the pre-training gate, reference
rows, the validation split (and a test split nobody may read while choosing), the
full-size topology where PreRNN acts, dropout placement, the per-frame CNN."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

import prernn
from launch.expand import expand
from launch.spec import load_spec
from prernn import backbones
from prernn.config import PretrainConfig
from prernn.train.pretrain import PretrainingRefused, cached_pretrained, probe_gate
from prernn.trial import NO_TEST_SPLIT, build_network, load_split

from .conftest import ROOT, TOY, sweep

# a face sweep small enough for tests: frozen conv features, a few epochs
FACE = dict(TOY, task="face", data={"source": "synthetic_face", "train_videos": 12, "test_videos": 4, "frames": 4,
                                    "size": 48},
            backbone={"name": "mini_vgg", "pretrained": "none"},
            train=dict(TOY["train"], epochs=3, freeze_backbone=True))
# a recipe that cannot move the weights: the backbone stays as randomly initialised
UNTRAINED = PretrainConfig(examples=64, validation=32, epochs=1, lr=1e-12, probe_videos=12, probe_steps=2)


@pytest.mark.bad_input
def test_a_randomly_initialised_backbone_is_refused_by_the_gate(tmp_path, monkeypatch):
    monkeypatch.setenv("PRERNN_CACHE", str(tmp_path))
    with pytest.raises(PretrainingRefused, match="no better than a random backbone's or a constant") as e:
        cached_pretrained("mini_vgg", "face", "synthetic_face", UNTRAINED.to_dict(), log=lambda m: None)
    report = next(tmp_path.glob("pretrained/*.json"))
    facts = json.loads(report.read_text())
    assert not facts["accepted"] and str(report) in str(e.value)
    assert set(facts["probe"]) >= {"pretrained", "random", "constant"} and set(facts["dead_units"]) == {"fc6", "fc7"}
    assert not list(tmp_path.glob("pretrained/*.pt")), "a refused backbone is never published"
    with pytest.raises(PretrainingRefused):  # the next trial is refused at once, from the report
        cached_pretrained("mini_vgg", "face", "synthetic_face", UNTRAINED.to_dict(), log=pytest.fail)


@pytest.mark.bad_input
def test_a_sweep_on_a_refused_pretraining_exits_2_and_writes_nothing(write_spec, tmp_path):
    spec = dict(FACE, backbone={"name": "mini_vgg", "pretrained": "cache", "pretrain": UNTRAINED.to_dict()})
    out = sweep(write_spec(spec), "--results-dir", tmp_path / "r")
    assert out.returncode == 2 and "refused" in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("task", ["face", "gesture"])
def test_the_gate_accepts_informative_features_and_refuses_random_ones(task):
    g = torch.Generator().manual_seed(0)
    n, steps = 40, 3
    if task == "face":
        targets = torch.rand(n, steps, 136, generator=g)
        informative = targets[..., :20] + 0.01 * torch.randn(n, steps, 20, generator=g)
    else:
        targets = torch.arange(n) % 10
        informative = torch.nn.functional.one_hot(targets, 16).float()[:, None].expand(n, steps, 16)
        informative = informative + 0.1 * torch.randn(n, steps, 16, generator=g)
    noise = torch.randn(n, steps, 20, generator=g)
    assert probe_gate(task, informative, noise, targets)["accepted"]
    assert not probe_gate(task, noise, noise, targets)["accepted"]


def test_reference_rows_appear_in_every_table_and_a_model_below_the_constant_is_named(tmp_path):
    from analysis.summary import summarize
    from analysis.tables import references

    from .stores import fake_store

    for name, mode in (("table1", "min"), ("table2", "min"), ("table3", "max")):
        spec, trials = fake_store(ROOT / f"sweeps/{name}.yaml", tmp_path / name, seeds=(0, 1),
                                  value=lambda i, t: 0.5 if t.config.model.model == "constant" else 0.1 + 0.01 * (i % 7))
        from analysis.data import load

        sweep = load(tmp_path / name, spec.task, trials, spec.profile)
        refs = references(sweep.trials, "test_loss" if mode == "min" else "test_accuracy")
        assert list(refs.column) == ["constant", "linear probe", "per-frame CNN"] and (refs.n == 2).all()
        metric = "test_loss" if mode == "min" else "test_accuracy"
        notes = summarize(sweep, spec, metric, mode).notes
        assert any(n.startswith("reference rows: constant 0.5000 (n=2), linear probe") for n in notes), notes
        # loss: every model (0.1-0.16) beats the constant 0.5; accuracy: none does
        assert any(n.startswith("WARNING") for n in notes) == (mode == "max"), notes


def test_the_validation_split_is_carved_from_the_training_videos(write_spec, monkeypatch):
    spec = dict(FACE, data=dict(FACE["data"], validation=3, evaluate_on="validation"))
    cfg = expand(load_spec(write_spec(spec)))[0].config
    monkeypatch.setenv(NO_TEST_SPLIT, "1")
    train, held = load_split(cfg, "train"), load_split(cfg, "test")
    whole = load_split(cfg.replace(data=cfg.data.replace(validation=0, evaluate_on="test")), "train")
    assert (len(train), len(held)) == (9, 3)
    assert torch.equal(torch.cat([train.targets, held.targets]), whole.targets)
    with pytest.raises(RuntimeError, match="the test split may not be read here"):
        load_split(cfg.replace(data=cfg.data.replace(evaluate_on="test")), "test")


@pytest.mark.slow
def test_the_lr_selection_script_never_reads_the_test_split(write_spec, tmp_path):
    """Every trial runs with the test split forbidden (an env var the script's workers
    inherit): a read of it would fail the trial, and the script with it."""
    spec = write_spec(dict(FACE, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 8},
                                       {"model": ["constant", "per-frame"]}]))
    env = {**os.environ, NO_TEST_SPLIT: "1"}
    out = subprocess.run([sys.executable, str(ROOT / "scripts/select_lr.py"), str(spec), "--lrs", "0.1", "0.01",
                          "--seeds", "0", "--validation", "3", "--results-dir", str(tmp_path / "sel")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    import pandas as pd

    df = pd.read_parquet(tmp_path / "sel" / "trials")
    assert len(df) == 4 and (df.status == "completed").all() and (df["data.evaluate_on"] == "validation").all()
    assert set(df["model.model"]) == {"traditional", "per-frame"}  # the constant has no learning rate
    assert "traditional: train.lr:" in out.stdout and "per-frame: train.lr:" in out.stdout


def test_mini_vgg_fc6_reads_the_whole_flattened_conv_map():
    b = backbones.create("mini_vgg")
    assert b.layers["fc6"].in_features == 64 * 6 * 6  # as VGG16's 512 x 7 x 7, no pooling to 2 x 2 first
    assert b.stem(torch.zeros(1, 3, 48, 48)).shape == (1, 64 * 6 * 6)
    c = backbones.create("mini_c3d")
    assert c.layers["fc6"].in_features == c.stem(torch.zeros(1, 3, 16, 32, 32)).shape[1]


def test_the_head_never_reads_dropout():
    """With fc6's dropout out of the way, a PreRNN network in training mode is deterministic
    (its fc7 feeds the head undropped) while a traditional one is not (fc7 feeds its RNN
    through dropout)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 48, 48)
    pre = prernn.make_recurrent(backbones.create("mini_vgg"), cell="gru")
    trad = prernn.make_traditional(backbones.create("mini_vgg"), "gru", 8)
    for net in (pre, trad):
        net.backbone.after["fc6"] = torch.nn.Identity()
        net.train()
    assert torch.equal(pre(x), pre(x))
    assert not torch.equal(trad(x), trad(x))
    extra = prernn.make_recurrent(backbones.create("mini_vgg"), cell="gru", extra_layers=1)
    extra.backbone.after["fc6"] = torch.nn.Identity()
    assert not torch.equal(extra(x), extra(x))  # fc7 feeds the random layer through dropout


def test_the_per_frame_cnn_is_the_pretrained_network_frame_by_frame(write_spec):
    spec = dict(FACE, grid=[{"model": "per-frame"}])
    cfg = expand(load_spec(write_spec(spec)))[0].config
    torch.manual_seed(0)
    net = build_network(cfg).eval()
    x = torch.randn(2, 4, 3, 48, 48)
    frame_by_frame = net.backbone(x.flatten(0, 1)).unflatten(0, (2, 4))
    torch.testing.assert_close(net(x), frame_by_frame)
    assert all(not layer.weight_hh.requires_grad and not layer.weight_hh.any() for layer in net.recurrent.values())


def test_the_shipped_mini_profiles_run_three_seeds_with_reference_rows():
    for name in ("table1", "table2", "table3", "gesture"):
        spec = load_spec(ROOT / f"sweeps/{name}.yaml")
        kinds = {t.config.model.model for t in expand(spec)}
        assert len(spec.seeds) >= 3 and {"constant", "probe", "per-frame"} <= kinds, name
    assert yaml.safe_load((ROOT / "sweeps/table1.yaml").read_text())["profiles"]["mini"]["data"]["train_videos"] == 50


def test_gesture_classes_differ_only_in_the_order_of_their_strokes():
    """Every class's reverse is a class too, and the second stroke starts where the first
    ended: the set of clips says which pair, only their order says which class."""
    import numpy as np

    from prernn.data.synthetic_motion import GESTURES, _strokes

    assert len(GESTURES) == 10 and {(b, a) for a, b in GESTURES} == set(GESTURES)
    rng = np.random.default_rng(0)
    p, scale = _strokes(("right", "left"), 80, rng)
    x = p[:, 0]
    assert np.all(np.diff(x[:40]) >= 0) and np.all(np.diff(x[40:]) <= 0)  # out to the right, then back
    assert abs(x[40] - x[39]) < 0.05 and np.allclose(p[:, 1], p[0, 1])  # one continuous path
    p, scale = _strokes(("pull", "push"), 80, rng)
    assert scale[0] > scale[39] and scale[79] > scale[40] and abs(scale[40] - scale[39]) < 0.05
