"""The README's main job, trimmed with --set so CI can afford it: every trial of Table 1,
on every backend, with the same trial ids and metrics as the local run."""

import numpy as np
import pandas as pd
import pytest

from .conftest import RAY_ADDRESS, ROOT, sweep

TRIM = ["train.epochs=1", "train.milestones=[]", "data.train_videos=4", "data.test_videos=2", "data.frames=4",
        "backbone.pretrain.videos=4", "backbone.pretrain.epochs=1"]


def table1(results, *extra):
    args = [ROOT / "sweeps/table1.yaml", "--results-dir", results, *extra]
    for item in TRIM:
        args += ["--set", item]
    return sweep(*args)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("t1") / "local"
    out = table1(results)
    return out, results


@pytest.mark.slow
def test_mini_table1_runs_every_trial_and_prints_the_table(local_run):
    out, results = local_run
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(results / "trials")
    assert len(df) == 21 and (df.status == "completed").all() and df.id.is_unique
    assert df.test_loss.notna().all() and df.test_nme.notna().all()
    assert set(df["model.cell"]) == {"vrnn", "lstm", "gru"} and df["model.matched"].sum() == 3
    assert "pre-training mini_vgg for face" in out.stdout or "pre-training" not in out.stdout  # cached by then
    for cell, paper_prernn in (("VRNN", "0.0819"), ("LSTM", "0.0951"), ("GRU", "0.0866")):
        line = next(l for l in out.stdout.splitlines() if l.strip("│ ").startswith(cell))
        assert paper_prernn in line  # the paper's value beside ours
    assert "[mini profile]" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["slurm", "ray"])
def test_mini_table1_on_a_cluster_matches_local(backend, local_run, request, tmp_path):
    request.getfixturevalue("slurm_cluster" if backend == "slurm" else "ray_cluster")
    extra = ["--wait"] if backend == "slurm" else ["--ray-address", RAY_ADDRESS]
    out = table1(tmp_path / backend, "--backend", backend, *extra)
    assert out.returncode == 0, out.stdout + out.stderr
    got = pd.read_parquet(tmp_path / backend / "trials").set_index("id").sort_index()
    ref = pd.read_parquet(local_run[1] / "trials").set_index("id").sort_index()
    assert list(got.index) == list(ref.index)  # the same 21 content-addressed trials
    # comparable, not bit-identical: the same seeded computation in another process can round
    # differently (seen once: 1 of 21 trials off by 3% after one epoch at lr 0.05)
    assert np.allclose(got.test_loss, ref.test_loss, rtol=0.1)
    assert (got.test_loss == ref.test_loss).mean() >= 0.75
    assert got.worker.str.startswith(backend).all()
