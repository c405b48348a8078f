"""Checkpoint retention (``train.keep``): an ended trial leaves only the weights it was asked to
keep; a failed one keeps its checkpoint so that ``--retry-failed`` resumes it; ``--dry-run``
forecasts the disk."""

import re

import pandas as pd
import pytest
import torch

from .conftest import TOY, sweep

GRID = [{"model": "traditional", "cell": "gru", "hidden_dim": [4, 8]},
        {"model": "traditional", "cell": "gru", "hidden_dim": 2, "data.fail_at_epoch": 2}]


def files(results, name):
    return sorted(p.parent.name for p in (results / "runs").glob(f"*/{name}"))


@pytest.mark.parametrize("keep", ["none", "last", "best"])
def test_an_ended_trial_keeps_what_train_keep_says_and_a_failed_one_its_checkpoint(keep, write_spec, tmp_path):
    spec = write_spec(dict(TOY, grid=GRID, train=dict(TOY["train"], epochs=4, keep=keep)))
    results = tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--workers", "2")
    assert out.returncode == 1, out.stdout + out.stderr  # the injected failure
    df = pd.read_parquet(results / "trials").set_index("id")
    done, failed = sorted(df.index[df.status == "completed"]), sorted(df.index[df.status == "failed"])
    assert len(done) == 2 and len(failed) == 1
    assert files(results, "checkpoint.pt") == failed  # --retry-failed resumes it
    # best: written as the trial trains, so a failed one has its best so far (its resume state)
    kept = {"none": [], "last": done, "best": sorted(done + failed)}[keep]
    assert files(results, "weights.pt") == kept
    epochs = pd.read_parquet(results / "epochs")
    for tid in files(results, "weights.pt"):
        weights = torch.load(results / "runs" / tid / "weights.pt", weights_only=True)
        losses = epochs[epochs.id == tid].set_index("epoch").test_loss  # the toy task's primary metric (min)
        if tid in done:
            assert weights["epoch"] == (losses.idxmin() if keep == "best" else losses.index.max())
        assert set(weights["streams"]) == {"spatial"} and "weight_ih_l0" in str(list(weights["streams"]["spatial"]))
    other = "best" if keep != "best" else "none"  # not part of a trial's id: the completed ones stay
    again = write_spec(dict(TOY, grid=GRID[:1], train=dict(TOY["train"], epochs=4, keep=other)), "again.yaml")
    out = sweep(again, "--results-dir", results)
    assert out.returncode == 0 and "2 already recorded" in out.stdout, out.stdout + out.stderr
    assert files(results, "weights.pt") == kept


def test_dry_run_forecasts_the_disk_of_a_trial_and_of_the_sweep(write_spec, tmp_path):
    from launch.cost import estimate
    from launch.expand import expand
    from launch.spec import load_spec

    path = write_spec(dict(TOY, grid=GRID[:1], train=dict(TOY["train"], epochs=2, keep="best")))
    out = sweep(path, "--results-dir", tmp_path / "r", "--dry-run", "--workers", "2")
    assert out.returncode == 0, out.stderr
    line = " ".join(out.stdout.split("disk in the store", 1)[1].split())  # as one line, however it wrapped
    assert "train.keep: best" in line and "2 trials at once on local" in line, line
    trials = expand(load_spec(path), str(path))
    params = [estimate(t.config)["parameters"] for t in trials]
    sizes = [float(n) * (1024 if unit == "GB" else 1) for n, unit in re.findall(r"([\d.]+) (GB|MB)", line)]
    trial_peak, trial_end, peak, end = sizes  # MB
    assert trial_end == pytest.approx(max(params) * 4 / 2**20, abs=0.05)  # one float32 copy of the network
    assert trial_peak == pytest.approx(max(params) * 20 / 2**20, abs=0.05)  # + two checkpoints while training
    assert end == pytest.approx(sum(params) * 4 / 2**20, abs=0.05)
    assert peak == pytest.approx(sum(p * 20 for p in params) / 2**20, abs=10)  # printed in GB: 0.01
    # the forecast against what a run leaves: a checkpoint is about 8 bytes a parameter, the weights 4
    assert sweep(path, "--results-dir", tmp_path / "r", "--set", "train.keep=last").returncode == 0
    for t, n in zip(trials, params):
        size = (tmp_path / "r" / "runs" / t.id / "weights.pt").stat().st_size
        assert n * 4 <= size <= n * 4 + 64 * 1024, (size, n)  # torch.save adds names and a zip header
    failed = tmp_path / "f"  # a failed trial keeps its checkpoint: weights and momentum, 8 bytes a parameter
    assert sweep(path, "--results-dir", failed, "--set", "data.fail_at_epoch=1").returncode == 1
    sizes = sorted(p.stat().st_size for p in (failed / "runs").glob("*/checkpoint.pt"))
    assert len(sizes) == 2 and all(n * 8 <= size <= n * 8 + 64 * 1024 for n, size in zip(sorted(params), sizes)), \
        (sizes, params)


@pytest.mark.parametrize("losses,best", [([0.5, 0.3, 0.4, 0.3], 1), ([0.5, float("nan"), 0.2], 2), ([0.9], 0)])
def test_best_keeps_the_first_epoch_with_the_best_evaluated_metric(losses, best, write_spec, tmp_path):
    from types import SimpleNamespace

    from launch.expand import expand
    from launch.spec import load_spec
    from prernn.trial import _keep_if_best

    path = write_spec(dict(TOY, train=dict(TOY["train"], keep="best")))
    cfg = expand(load_spec(path), str(path))[0].config
    net, history = torch.nn.Linear(2, 2), []
    for epoch, loss in enumerate(losses):
        with torch.no_grad():
            net.bias.fill_(epoch)  # which epoch's weights were kept
        history.append({"epoch": epoch, "test_loss": loss})
        _keep_if_best(cfg, [SimpleNamespace(name="spatial", net=net)], history, tmp_path)
    kept = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert kept["epoch"] == best and kept["streams"]["spatial"]["bias"].tolist() == [best, best]
