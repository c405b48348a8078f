"""The README's main job, trimmed with --set so CI can afford it: every trial of Table 1,
on every backend, with the same trial ids and metrics as the local run."""

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


def pretraining_file():
    """Where the trimmed Table 1's mini VGG pre-training is cached."""
    from launch.expand import expand
    from launch.spec import load_spec

    spec = load_spec(ROOT / "sweeps/table1.yaml", overrides=TRIM)
    cfg = expand(spec)[0].config
    b = cfg.backbone
    from prernn.train.pretrain import pretrained_path

    return pretrained_path(b.name, cfg.task, cfg.data.source, b.pretrain.to_dict(), "spatial")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("t1") / "local"
    cached = pretraining_file().is_file()
    out = table1(results)
    return out, results, cached


@pytest.mark.slow
def test_mini_table1_runs_every_trial_and_prints_the_table(local_run):
    out, results, cached = local_run
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(results / "trials")
    assert len(df) == 21 and (df.status == "completed").all() and df.id.is_unique
    assert df.test_loss.notna().all() and df.test_nme.notna().all()
    assert set(df["model.cell"]) == {"vrnn", "lstm", "gru"} and df["model.matched"].sum() == 3
    assert pretraining_file().is_file()
    assert ("pre-training mini_vgg for face" in out.stdout) == (not cached)  # once, by the launcher, when absent
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
    # the determinism rule (README, "Determinism"): bit-identical on every backend
    pd.testing.assert_series_equal(got.test_loss, ref.test_loss, check_exact=True)
    pd.testing.assert_series_equal(got.test_nme, ref.test_nme, check_exact=True)
    assert got.worker.str.startswith(backend).all()
