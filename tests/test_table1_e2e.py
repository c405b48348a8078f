"""The README's main job, trimmed with --set so CI can afford it: every trial of Table 1,
on every backend, with the same trial ids and metrics as the local run."""

import re

import pandas as pd
import pytest

from .conftest import RAY_ADDRESS, ROOT, sweep

# a pre-training of 9 s on this machine that its gate accepts (probe 0.0281 against random 0.0305)
TRIM = ["train.epochs=1", "train.milestones=[]", "data.train_videos=4", "data.test_videos=2", "data.frames=4",
        "backbone.pretrain.examples=2000", "backbone.pretrain.validation=200", "backbone.pretrain.epochs=2",
        "backbone.pretrain.probe_videos=40"]


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
    assert len(df) == 72 and (df.status == "completed").all() and df.id.is_unique  # 24 trials x 3 seeds
    assert df.test_loss.notna().all() and df.test_nme.notna().all()
    assert set(df["model.cell"].dropna()) == {"vrnn", "lstm", "gru"} and df["model.matched"].sum() == 9
    assert set(df["model.model"]) == {"traditional", "prernn", "constant", "probe", "per-frame"}
    assert pretraining_file().is_file()
    assert ("pre-training mini_vgg for face" in out.stdout) == (not cached)  # once, by the launcher, when absent
    lines = out.stdout.splitlines()
    summary = lines[next(i for i, l in enumerate(lines) if l.startswith("table1 [mini profile]: test_loss")):]
    assert max(len(l) for l in summary[:-1]) <= 80  # the summary fits an 80-column terminal (then the path)
    claims = [l for l in summary if " PreRNN > " in l]
    # 3 cells x 6 columns, each with its interval, n = 3 seeds and a verdict
    assert len(claims) == 18 and all(re.search(r"\] +3 +(reproduced|reversed|inconclusive)", l) for l in claims)
    pre = next(l for l in summary if l.startswith(" PreRNN "))
    assert all(f"| {paper}" in pre for paper in (".0819", ".0951", ".0866"))  # the paper's value beside ours
    assert any(l.startswith("reference rows: constant") for l in summary)
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
    assert list(got.index) == list(ref.index)  # the same 72 content-addressed trials
    # the determinism rule (README, "Determinism"): bit-identical on every backend
    pd.testing.assert_series_equal(got.test_loss, ref.test_loss, check_exact=True)
    pd.testing.assert_series_equal(got.test_nme, ref.test_nme, check_exact=True)
    assert got.worker.str.startswith(backend).all()
