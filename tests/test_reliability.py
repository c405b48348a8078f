"""Fault injection: the sweep keeps working and loses nothing when its launcher or
its workers are SIGKILLed at random points, when many processes write one store at
once, and when a worker dies without a trace. Each test records its figures
(``record_property("reliability ...")``); the run's summary prints their totals and
RELIABILITY.md quotes them."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from .conftest import ROOT, SWEEP, TOY, children, sweep

# 9 trials of 4 epochs, each a few seconds: kills land before, inside and between trials
SLOW = dict(TOY, grid=[{"model": "traditional", "cell": ["vrnn", "gru", "lstm"], "hidden_dim": [4, 8, 16]}],
            train=dict(TOY["train"], epochs=4), data=dict(TOY["data"], train_videos=48, size=32))
KILLS = 10


def launch(spec, results, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SWEEP), str(spec), "--results-dir", str(results), "--workers", "2",
                             *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def workers(pid: int) -> list[int]:
    """The launcher's trial workers (not multiprocessing's resource tracker)."""
    out = []
    for kid in children(pid):
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.append(kid)
        except OSError:
            pass
    return out


def check_store(results) -> dict[str, str]:
    """Every file a reader sees parses; every checkpoint loads. Returns id -> status."""
    for d in ("trials", "epochs"):
        for path in (results / d).glob("[!.]*.parquet"):
            pq.read_table(path)  # raises on a torn file
    for ckpt in (results / "runs").glob("*/checkpoint.pt"):
        torch.load(ckpt, weights_only=True)
    df = trials(results)
    assert df.id.is_unique
    return dict(zip(df.id, df.status))


def check_complete(results, trials: int, epochs: int, completed_at: dict) -> None:
    """One completed row per trial, every epoch once, and no completed trial ran again."""
    df = pd.read_parquet(results / "trials").set_index("id")
    assert len(df) == trials and (df.status == "completed").all()
    for tid, started in completed_at.items():
        assert df.loc[tid, "started_at"] == started, f"{tid} ran again after it completed"
    ep = pd.read_parquet(results / "epochs")
    assert len(ep) == trials * epochs and not ep.duplicated(["id", "epoch"]).any()
    for log in (results / "runs").glob("*/log.txt"):
        lines = log.read_text().splitlines()
        ends = [i for i, line in enumerate(lines) if line.endswith(" completed")]
        assert len(ends) == 1, f"{log}: {len(ends)} completions"
        assert not any(" start " in line for line in lines[ends[0]:]), f"{log}: started again after completing"


def has_epoch(results) -> bool:
    return (results / "epochs").is_dir() and any((results / "epochs").glob("*.parquet"))


def trials(results) -> pd.DataFrame:
    files = sorted((results / "trials").glob("[!.]*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame(columns=["id", "status", "started_at"])


def completed_rows(results) -> dict:
    df = trials(results)
    return dict(zip(df.id[df.status == "completed"], df.started_at[df.status == "completed"]))


@pytest.mark.slow
def test_launcher_sigkilled_at_random_points_ten_times(write_spec, tmp_path, record_property):
    rng = random.Random(8)
    spec, results = write_spec(SLOW), tmp_path / "r"
    completed_at: dict = {}
    for kill in range(KILLS):
        proc = launch(spec, results)
        time.sleep(rng.uniform(0.5, 7.0))  # start-up, mid-epoch, mid-write, between trials
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and everything it started, no warning
        proc.wait()
        check_store(results)
        for tid, started in completed_rows(results).items():
            assert completed_at.setdefault(tid, started) == started, f"kill {kill}: {tid} ran twice"
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 0, out.stdout + out.stderr
    check_complete(results, 9, 4, completed_at)
    record_property("reliability launcher kills survived", KILLS)
    record_property("reliability rows lost", 9 - len(pd.read_parquet(results / "trials")))


@pytest.mark.slow
def test_trial_workers_sigkilled_at_random_points_ten_times(write_spec, tmp_path, record_property):
    """The launcher survives its workers' deaths: each killed trial runs again from its
    checkpoint in a fresh worker, the others go on, and the sweep completes."""
    rng = random.Random(9)
    longer = dict(SLOW, train=dict(SLOW["train"], epochs=8))  # outlasts 10 kills <= 2 s apart
    spec, results = write_spec(longer), tmp_path / "r"
    proc = launch(spec, results, "--max-failures", str(KILLS))
    kills = 0
    while kills < KILLS and proc.poll() is None:
        time.sleep(rng.uniform(0.5, 2.0))
        alive = workers(proc.pid)
        if alive:
            os.kill(rng.choice(alive), signal.SIGKILL)
            kills += 1
    assert kills == KILLS, "the sweep ended before every kill landed"
    assert proc.wait(timeout=600) == 0
    check_store(results)
    check_complete(results, 9, 8, {})
    record_property("reliability worker kills survived", kills)


@pytest.mark.slow
def test_a_worker_that_dies_too_often_is_recorded_failed_and_resumes_on_retry(write_spec, tmp_path):
    spec, results = write_spec(dict(SLOW, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}])), tmp_path / "r"
    proc = launch(spec, results, "--max-failures", "0")
    while not has_epoch(results):
        assert proc.poll() is None, "the trial ended before it could be killed"
        time.sleep(0.1)
    os.kill(workers(proc.pid)[0], signal.SIGKILL)
    assert proc.wait(timeout=120) == 1
    row = pd.read_parquet(results / "trials").iloc[0]
    assert row.status == "failed" and "WorkerDied" in row.error and "--retry-failed" in row.error
    out = sweep(spec, "--results-dir", results, "--retry-failed")
    assert out.returncode == 0, out.stdout + out.stderr
    log = next((results / "runs").glob("*/log.txt")).read_text()
    assert "resuming after epoch" in log


WRITER = textwrap.dedent("""
    import json, random, sys
    from launch.runner import execute
    jobs = json.load(open(sys.argv[1]))
    random.Random(int(sys.argv[2])).shuffle(jobs)
    for job in jobs:
        execute(job["id"], job["config"], sys.argv[3], {"sweep": "toy", "profile": "mini", "worker": sys.argv[2]})
""")


@pytest.mark.slow
def test_many_processes_write_one_store_at_once(tmp_path, record_property):
    """8 writers (as SLURM array tasks on a shared filesystem), each given every trial
    in its own order: each trial runs exactly once, every row lands, none is torn."""
    from launch.expand import expand
    from launch.spec import SweepSpec

    writers, trials = 8, expand(SweepSpec.model_validate(dict(TOY, profile="mini", seeds=list(range(5)))))
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"id": t.id, "config": t.config} for t in trials]))
    results = tmp_path / "r"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(jobs), str(w), str(results)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    statuses = check_store(results)
    assert len(statuses) == len(trials) == 25 and set(statuses.values()) == {"completed"}
    for log in (results / "runs").glob("*/log.txt"):
        assert log.read_text().count(" start ") == 1, f"{log}: ran more than once"
    ep = pd.read_parquet(results / "epochs")
    assert len(ep) == 25 * 2 and not ep.duplicated(["id", "epoch"]).any()
    record_property("reliability concurrent writers", writers)
    record_property("reliability rows lost", 25 - len(statuses))


@pytest.mark.slow
def test_a_trial_whose_worker_vanished_is_lost_not_running_and_reruns(write_spec, tmp_path, record_property):
    one = dict(SLOW, grid=[{"model": "traditional", "cell": "lstm", "hidden_dim": 8}], train=dict(SLOW["train"], epochs=6))
    spec, results = write_spec(one), tmp_path / "r"
    proc = launch(spec, results)
    while not has_epoch(results):
        assert proc.poll() is None, "the trial ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGSTOP)  # held mid-trial, so it cannot finish while status looks
    st = sweep("status", spec, "--results-dir", results)
    assert "1 running" in st.stdout, st.stdout  # heartbeat fresh
    os.killpg(proc.pid, signal.SIGKILL)  # no record, no goodbye: only the heartbeat stops
    proc.wait()
    heartbeat = next((results / "runs").glob("*/heartbeat"))
    past = time.time() - 121  # as if the default 120 s had passed
    os.utime(heartbeat, (past, past))
    st = sweep("status", spec, "--results-dir", results)
    assert "1 lost" in st.stdout and "running" not in st.stdout, st.stdout
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming after epoch" in next((results / "runs").glob("*/log.txt")).read_text()
    assert "1 completed" in sweep("status", spec, "--results-dir", results).stdout
    record_property("reliability lost trials rerun", 1)
