"""The sweep CLI end to end, as a user runs it: a fresh process per command."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import ROOT, TOY, cancel_from_another_process_then_resume, children, sweep, wait_for


def rows(results):
    return pd.read_parquet(results / "trials")


def test_run_skip_completed_and_grow_the_grid(write_spec, tmp_path):
    spec, results = write_spec(), tmp_path / "r"
    first = sweep(spec, "--results-dir", results)
    assert first.returncode == 0, first.stderr
    df = rows(results)
    assert len(df) == 5 and (df.status == "completed").all() and df.id.is_unique
    assert "5 completed, 0 failed" in first.stdout
    assert (results / "spec.yaml").is_file() and len(pd.read_parquet(results / "epochs")) == 10

    again = sweep(spec, "--results-dir", results)
    assert again.returncode == 0 and "5 already recorded, 0 to run" in again.stdout
    pd.testing.assert_frame_equal(rows(results).sort_values("id"), df.sort_values("id"))  # nothing reran

    grown = sweep(spec, "--results-dir", results, "--set", "grid.0.hidden_dim=[4, 8, 16]")
    assert grown.returncode == 0 and "7 trials, 5 already recorded, 2 to run" in grown.stdout
    after = rows(results).set_index("id")
    assert len(after) == 7
    old = df.set_index("id")
    assert (after.loc[old.index, "started_at"] == old.started_at).all()


def test_failed_and_diverged_trials_are_recorded_and_the_rest_completes(write_spec, tmp_path):
    grid = [{"model": "traditional", "cell": "gru", "hidden_dim": [4, 8]},
            {"model": "traditional", "cell": "gru", "hidden_dim": 4, "data.fail_at_epoch": 1},
            {"model": "traditional", "cell": "vrnn", "hidden_dim": 4, "train.lr": 1.0e12}]
    spec, results = write_spec(dict(TOY, grid=grid)), tmp_path / "r"
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 1, out.stderr
    df = rows(results).set_index("data.fail_at_epoch", drop=False)
    status = sorted(rows(results).status)
    assert status == ["completed", "completed", "diverged", "failed"]
    failed = rows(results).query("status == 'failed'").iloc[0]
    assert "injected failure at epoch 1" in failed.error and failed.epochs_done == 1
    assert "Diverged" in rows(results).query("status == 'diverged'").iloc[0].error
    assert "failed: " in out.stdout and "diverged: " in out.stdout
    assert len(df) == 4

    rerun = sweep(spec, "--results-dir", results)  # failures are not retried unless asked
    assert rerun.returncode == 1 and "4 already recorded, 0 to run" in rerun.stdout
    retry = sweep(spec, "--results-dir", results, "--retry-failed")
    assert retry.returncode == 1 and "2 to run" in retry.stdout
    assert len(rows(results)) == 4  # still one row per trial


def test_dry_run_and_status(write_spec, tmp_path):
    spec, results = write_spec(), tmp_path / "r"
    dry = sweep(spec, "--results-dir", results, "--dry-run")
    assert dry.returncode == 0 and "5 trials" in dry.stdout and "gru traditional h=8" in dry.stdout
    assert not results.exists()
    st = sweep("status", spec, "--results-dir", results)  # nothing ran there: a mistyped path looks the same
    assert st.returncode == 2 and f"{results} does not exist" in st.stderr and "5 trials planned" in st.stderr
    assert not results.exists()
    sweep(spec, "--results-dir", results, "--set", "grid=[{model: prernn, cell: lstm}]")
    st = sweep("status", spec, "--results-dir", results)
    assert "1 completed, 4 pending" in st.stdout


@pytest.mark.slow
def test_sigkill_the_launcher_then_rerun(write_spec, tmp_path):
    """Kill -9 mid-sweep: workers die with it; the rerun finishes; no trial twice, one row each."""
    import subprocess
    import sys

    from .conftest import ROOT, SWEEP

    grid = [{"model": "traditional", "cell": ["vrnn", "gru", "lstm"], "hidden_dim": [4, 8, 16]}]
    slow = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=4),
                data=dict(TOY["data"], train_videos=48, size=32))
    spec, results = write_spec(slow), tmp_path / "r"
    proc = subprocess.Popen([sys.executable, str(SWEEP), str(spec), "--results-dir", str(results), "--workers", "2"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(list((results / "trials").glob("[!.]*.parquet"))) >= 2, "two recorded trials", timeout=300)
    workers = children(proc.pid)
    assert workers, "the launcher should have worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = rows(results).set_index("id")
    assert 2 <= len(done_before) < 9, "killed mid-sweep"

    def alive():
        out = []
        for p in workers:
            try:
                if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(p)
            except OSError:
                pass
        return out

    wait_for(lambda: not alive(), "the workers to die with the launcher", timeout=30)

    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 0, out.stdout + out.stderr
    after = rows(results).set_index("id")
    assert len(after) == 9 and after.index.is_unique and (after.status == "completed").all()
    assert (after.loc[done_before.index, "started_at"] == done_before.started_at).all()  # none ran twice
    assert f"{len(done_before)} already recorded" in out.stdout
    epochs = pd.read_parquet(results / "epochs")
    assert len(epochs) == 9 * 4 and not epochs.duplicated(["id", "epoch"]).any()


@pytest.mark.slow
def test_one_launcher_per_sweep_directory(write_spec, tmp_path):
    """A second launcher on a sweep directory in use exits 2 and starts nothing; once the
    first has ended (or died: the lock dies with it), the directory is free again."""
    import subprocess
    import sys

    from .conftest import ROOT, SWEEP

    slow = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": [4, 8]}],
                train=dict(TOY["train"], epochs=6), data=dict(TOY["data"], train_videos=48, size=32))
    spec, results = write_spec(slow), tmp_path / "r"
    first = subprocess.Popen([sys.executable, str(SWEEP), str(spec), "--results-dir", str(results)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (results / "spec.yaml").exists() or first.poll() is not None, "the first launcher to start")
    second = sweep(spec, "--results-dir", results)
    assert second.returncode == 2 and "another launcher is running this sweep" in second.stderr, second.stdout
    assert first.poll() is None, "the first launcher ended before the second tried"
    assert first.wait(timeout=600) == 0, first.stderr.read()
    logs = list(results.glob("runs/*/log.txt"))
    assert len(logs) == 2 and all(log.read_text().count(" start ") == 1 for log in logs)  # nobody ran them twice
    third = sweep(spec, "--results-dir", results)
    assert third.returncode == 0 and "2 already recorded, 0 to run" in third.stdout


def test_the_console_entry_point_is_the_same_command(write_spec):
    """``prernn-sweep`` (pyproject's console script, installed by setup.sh) is ``python launch/sweep.py``."""
    exe = Path(sys.executable).with_name("prernn-sweep")
    if not exe.exists():
        pytest.skip("prernn-sweep is not installed (./setup.sh installs it)")
    spec = write_spec()
    installed = subprocess.run([str(exe), str(spec), "--dry-run"], capture_output=True, text=True, cwd=ROOT)
    script = sweep(spec, "--dry-run")
    assert installed.returncode == script.returncode == 0, installed.stderr
    assert installed.stdout == script.stdout and "dry run" in installed.stdout
    wrong = subprocess.run([str(exe), str(spec), "--asha"], capture_output=True, text=True, cwd=ROOT)
    assert wrong.returncode == 2 and "--asha is an option of the ray backend, not of local" in wrong.stderr


@pytest.mark.slow
def test_cancel_of_a_local_sweep_from_another_process_then_a_rerun_resumes(write_spec, tmp_path):
    cancel_from_another_process_then_resume(write_spec, tmp_path, "--workers", "2")
