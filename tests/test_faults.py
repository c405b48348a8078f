"""Faults that name themselves: a results path that is missing, not a store, or read-only gives
one line naming the path and what to do, exit 2, and nothing half-written; a rerun completes."""

import contextlib
import subprocess

import pandas as pd
import pytest

from analysis.data import load, load_trials
from records import NoStore

from .conftest import TOY, sweep

ONE = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}])


def test_status_and_analysis_on_a_path_that_holds_no_store_say_so(write_spec, tmp_path):
    spec = write_spec(ONE)
    for path in (tmp_path / "typo", tmp_path / "other"):
        st = sweep("status", spec, "--results-dir", path)
        assert st.returncode == 2 and str(path) in st.stderr and "no sweep's store" in st.stderr, st.stderr
        with pytest.raises(NoStore, match=str(path)):
            load_trials(path, "toy")
        (tmp_path / "other").mkdir(exist_ok=True)
    with pytest.raises(NoStore, match="holds no spec.yaml"):
        load(tmp_path / "other", "toy", [])


def test_a_directory_of_other_files_is_not_taken_for_a_store(write_spec, tmp_path):
    spec, results = write_spec(ONE), tmp_path / "papers"
    results.mkdir()
    (results / "draft.tex").write_text("mine")
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 2 and f"{results} is not a sweep's store" in out.stderr and "draft.tex" in out.stderr
    assert sorted(p.name for p in results.iterdir()) == ["draft.tex"]  # nothing written beside it


@contextlib.contextmanager
def tmpfs(path, size="64m"):
    """A small filesystem of the test's own (root may mount one; elsewhere the test skips)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_read_only_results_directory_is_named_then_a_rerun_completes(write_spec, tmp_path):
    spec = write_spec(ONE)
    with tmpfs(tmp_path / "fs") as fs:
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        out = sweep(spec, "--results-dir", fs / "r")
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"cannot write the results directory {fs / 'r'}: Read-only file system" in out.stderr
        assert "Traceback" not in out.stderr and not list(fs.iterdir())
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
        assert sweep(spec, "--results-dir", fs / "r").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        report = sweep("report", spec, "--results-dir", fs / "r", "--output", fs / "r" / "x.html")
        assert report.returncode == 2 and "cannot write the report" in report.stderr and "Traceback" not in report.stderr
        assert (pd.read_parquet(fs / "r" / "trials").status == "completed").all()  # still readable, all there


def test_a_full_disk_stops_the_sweep_with_a_line_and_a_rerun_resumes(write_spec, tmp_path):
    """A 4 MB filesystem holds a toy trial's first checkpoint (2.7 MB) but not the second beside
    it: the launcher stops, names the path, exit 3; with room again the rerun resumes the trial."""
    spec = write_spec(dict(ONE, train=dict(TOY["train"], epochs=3)))
    with tmpfs(tmp_path / "fs", size="4m") as fs:
        out = sweep(spec, "--results-dir", fs / "r", "--workers", "1")
        assert out.returncode == 3, out.stdout + out.stderr
        assert f"cannot write {fs / 'r'}" in out.stderr and "No space left on device" in out.stderr
        assert "Traceback" not in out.stderr
        assert not list((fs / "r").glob("trials/*.parquet"))  # not recorded failed: the disk's fault
        assert not list((fs / "r").glob("runs/*/.*.tmp"))  # no partial checkpoint left taking the room
        subprocess.run(["mount", "-o", "remount,size=64m", str(fs)], check=True)
        rerun = sweep(spec, "--results-dir", fs / "r")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        (log,) = (fs / "r" / "runs").glob("*/log.txt")
        assert "resuming after epoch" in log.read_text()
