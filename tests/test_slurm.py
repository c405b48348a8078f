"""The SLURM backend on a real (single-node) cluster: arrays, states, cancel, requeue."""

import subprocess
import time

import pandas as pd
import pytest

from launch.backends.slurm import SlurmOptions, sbatch_parameters
from launch.spec import Resources

from .conftest import ROOT, TOY, sweep, wait_for


def test_sbatch_text_matches_the_golden_file():
    from submitit.slurm.slurm import _make_sbatch_string

    params = sbatch_parameters(Resources(cpus=8, gpus=1, mem_gb=32, timeout_min=1440),
                               SlurmOptions(partition="gpu", account="vision", qos="normal", constraint="a100",
                                            max_running=4), "prernn-table1")
    params["setup"] = [line.replace(str(ROOT), "/repo") for line in params["setup"]]
    text = _make_sbatch_string(command="python -m submitit.core._submit /f", folder="/f", map_count=21, **params)
    golden = ROOT / "tests" / "golden" / "sbatch_table1_paper.txt"
    assert text == golden.read_text()


def test_sbatch_parameters_table():
    r = Resources(cpus=2, gpus=0.5, mem_gb=1.5, timeout_min=30)
    p = sbatch_parameters(r, SlurmOptions(), "x")
    assert (p["cpus_per_task"], p["gpus_per_node"], p["mem"], p["time"]) == (2, 1, "1536MB", 30)
    assert "partition" not in p and p["array_parallelism"] == 64
    assert "gpus_per_node" not in sbatch_parameters(Resources(), SlurmOptions(), "x")
    assert sbatch_parameters(r, SlurmOptions(gpus_per_node=4), "x")["gpus_per_node"] == 4


@pytest.mark.parametrize("sacct", ["170_0|CANCELLED by 0\n170_[1-3]|CANCELLED by 0\n",
                                   "170_0|CANCELLED by 0\n170|CANCELLED by 0\n"])
def test_a_cancelled_arrays_unstarted_tasks_take_the_arrays_state(sacct, tmp_path, monkeypatch):
    """sacct lists an array's cancelled, never-started tasks either as '170_[1-3]' or under the
    bare array id '170' (both seen on the test cluster); either way they are cancelled, not
    unknown (which left `status` short of '4 cancelled' in one CI run of three)."""
    import json
    from types import SimpleNamespace

    from launch.backends import slurm

    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm/170.json").write_text(json.dumps({"job_id": "170", "trials": list("abcd"), "submitted_at": 1.0,
                                                         "jobs": [f"170_{i}" for i in range(4)]}))
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: SimpleNamespace(
        stdout=sacct if cmd[0] == "sacct" else ""))
    assert {t: state for t, (state, _) in slurm.trial_states(tmp_path).items()} == dict.fromkeys("abcd", "CANCELLED")


@pytest.mark.slow
def test_submit_returns_at_once_then_cancel_and_rerun(slurm_cluster, write_spec, tmp_path):
    grid = [{"model": "traditional", "cell": "gru", "hidden_dim": [4, 8, 16, 32]}]
    # ~25 s a trial: the cancel (a fresh CLI process) must land while the first one runs, even on a busy CI
    slow = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=100), data=dict(TOY["data"], train_videos=64, size=32))
    spec, results = write_spec(slow), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", "slurm", "--max-running", "1")
    assert out.returncode == 0 and "submitted 4 trials as SLURM array job" in out.stdout
    # it returned without waiting for the trials: they run one at a time and not all have ended
    assert len(list(results.glob("trials/[!.]*.parquet"))) < 4
    again = sweep(spec, "--results-dir", results, "--backend", "slurm")  # nothing is submitted twice
    assert "4 queued, 0 to run" in again.stdout, again.stdout
    wait_for(lambda: (results / "runs").is_dir() and any((results / "runs").iterdir()), "the first trial to start")
    cancel = sweep("cancel", spec, "--results-dir", results)  # the first trial is running, three are queued
    assert cancel.returncode == 0 and "cancelled SLURM job" in cancel.stdout
    # the running task passes through COMPLETING while SLURM kills it
    wait_for(lambda: "4 cancelled" in sweep("status", spec, "--results-dir", results).stdout, "4 cancelled trials",
             timeout=60, every=0.5)
    rerun = sweep(spec, "--results-dir", results, "--backend", "slurm", "--wait")  # the same spec, cleanly
    assert rerun.returncode == 0 and "0 already recorded, 4 to run" in rerun.stdout, rerun.stdout + rerun.stderr
    df = pd.read_parquet(results / "trials")
    assert len(df) == 4 and (df.status == "completed").all() and (df.epochs_done == 100).all()


@pytest.mark.slow
def test_requeued_trial_resumes_from_its_last_epoch(slurm_cluster, write_spec, tmp_path):
    grid = [{"model": "prernn", "cell": "gru"}]
    spec_dict = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=40),  # ~17 s: outlives the kill
                     data=dict(TOY["data"], train_videos=96, size=32))
    spec, results = write_spec(spec_dict), tmp_path / "r"
    local = sweep(spec, "--results-dir", tmp_path / "local")
    assert local.returncode == 0
    out = sweep(spec, "--results-dir", results, "--backend", "slurm")
    job = out.stdout.split("SLURM array job ")[1].split()[0]  # one task: a plain job id
    epochs = results / "epochs"
    wait_for(lambda: epochs.is_dir() and any(len(pd.read_parquet(p)) >= 2 for p in epochs.glob("[!.]*.parquet")),
             "two epochs of the trial", timeout=180, every=0.5)
    subprocess.run(["scontrol", "requeue", job], check=True)  # restarts it from scratch, as after a node failure
    wait_for(lambda: (results / "trials").is_dir() and any((results / "trials").glob("[!.]*.parquet")),
             "the requeued trial's row", timeout=300, every=0.5)
    log = next((results / "runs").glob("*/log.txt")).read_text()
    assert "resuming after epoch" in log
    a = pd.read_parquet(results / "trials").iloc[0]
    b = pd.read_parquet(tmp_path / "local" / "trials").iloc[0]
    assert a.status == "completed" and a.test_loss == b.test_loss and a.epochs_done == 40


@pytest.mark.slow
def test_a_running_job_whose_heartbeat_is_stale_is_cancelled_and_resubmitted(slurm_cluster, write_spec, tmp_path):
    """SLURM still calls the job RUNNING, but its trial has hung (SIGSTOPped: no epochs, no
    heartbeat). A rerun cancels that job and submits the trial again; the new job resumes
    from the last epoch checkpoint and completes."""
    import os
    import re
    import signal

    grid = [{"model": "traditional", "cell": "gru", "hidden_dim": 8}]
    spec_dict = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=150), data=dict(TOY["data"], train_videos=64, size=32))
    spec, results = write_spec(spec_dict), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", "slurm")
    assert out.returncode == 0, out.stdout + out.stderr
    job = out.stdout.split("SLURM array job ")[1].split()[0]
    wait_for(lambda: any(results.glob("epochs/[!.]*.parquet")), "the trial's first epoch", timeout=180)
    log = next(results.glob("runs/*/log.txt"))
    pid = int(re.search(r" pid (\d+) ", log.read_text()).group(1))
    os.kill(pid, signal.SIGSTOP)  # hung: the process is alive, SLURM says RUNNING, the heartbeat stops
    try:
        heartbeat = next(results.glob("runs/*/heartbeat"))
        past = time.time() - 60
        os.utime(heartbeat, (past, past))  # as if 60 s had passed without a beat
        st = sweep("status", spec, "--results-dir", results, "--lost-after", "30")
        assert "1 lost" in st.stdout, st.stdout

        # a hung job left running would keep the trial's claim: the rerun would wait forever
        rerun = sweep(spec, "--results-dir", results, "--backend", "slurm", "--lost-after", "30", "--wait",
                      timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "1 trial(s) without a heartbeat for 30 s: cancelled, rerunning" in rerun.stdout
        assert "1 to run" in rerun.stdout and rerun.stdout.count("submitted 1 trials as SLURM array job") == 1
        state = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job], capture_output=True,
                               text=True).stdout
        assert state.split()[0].startswith("CANCELLED"), state
        row = pd.read_parquet(results / "trials").iloc[0]
        assert row.status == "completed" and row.epochs_done == 150
        assert "resuming after epoch" in log.read_text()
    finally:  # whatever happened, leave the test cluster free for the next test
        sweep("cancel", spec, "--results-dir", results)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
