"""The README's main job, trimmed with --set so CI can afford it: every trial of Table 1."""

import pandas as pd
import pytest

from .conftest import ROOT, sweep

TRIM = ["train.epochs=1", "train.milestones=[]", "data.train_videos=4", "data.test_videos=2", "data.frames=4",
        "backbone.pretrain.videos=4", "backbone.pretrain.epochs=1"]


@pytest.mark.slow
def test_mini_table1_runs_every_trial_and_prints_the_table(tmp_path):
    args = [ROOT / "sweeps/table1.yaml", "--results-dir", tmp_path / "t1"]
    for item in TRIM:
        args += ["--set", item]
    out = sweep(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(tmp_path / "t1" / "trials")
    assert len(df) == 21 and (df.status == "completed").all() and df.id.is_unique
    assert df.test_loss.notna().all() and df.test_nme.notna().all()
    assert set(df["model.cell"]) == {"vrnn", "lstm", "gru"} and df["model.matched"].sum() == 3
    assert "pre-training mini_vgg for face once" in out.stdout
    for cell, paper_prernn in (("VRNN", "0.0819"), ("LSTM", "0.0951"), ("GRU", "0.0866")):
        line = next(l for l in out.stdout.splitlines() if l.strip("│ ").startswith(cell))
        assert paper_prernn in line  # the paper's value beside ours
    assert "[mini profile]" in out.stdout
