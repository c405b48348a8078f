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
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from launch.expand import expand
from launch.spec import load_spec

from .conftest import ROOT, SWEEP, TOY, children, sweep, wait_for

# 9 trials of 4 epochs, each a few seconds on this machine; kills are placed by what the sweep
# has done (an epoch row, a trial row), not by how long it took, so a faster machine sees the same
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
        # logged once its row has landed: a kill between the two leaves none, never two
        assert len(ends) <= 1, f"{log}: {len(ends)} completions"
        assert not any(" start " in line for line in (lines[ends[0]:] if ends else [])), \
            f"{log}: started again after completing"


def lost_rows(results, expected: set[str], epochs: int) -> tuple[int, int]:
    """(rows compared, rows lost): every expected trial row and each of its epoch rows
    looked up in the store."""
    present = set(trials(results).id)
    ep = pd.read_parquet(results / "epochs") if has_epoch(results) else pd.DataFrame(columns=["id", "epoch"])
    epoch_rows = set(zip(ep.id, ep.epoch))
    want = {(tid, e) for tid in expected for e in range(epochs)}
    return len(expected) + len(want), len(expected - present) + len(want - epoch_rows)


def has_epoch(results) -> bool:
    return (results / "epochs").is_dir() and any((results / "epochs").glob("*.parquet"))


def rows_written(results, table: str) -> int:
    """Rows in the visible files of ``table`` (epochs files grow by one row an epoch)."""
    total = 0
    for path in (results / table).glob("[!.]*.parquet") if (results / table).is_dir() else ():
        try:
            total += pq.read_metadata(path).num_rows
        except (OSError, pa.ArrowInvalid):  # replaced between glob and read
            pass
    return total


def trials(results) -> pd.DataFrame:
    files = sorted((results / "trials").glob("[!.]*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame(columns=["id", "status", "started_at"])


def completed_rows(results) -> dict:
    df = trials(results)
    return dict(zip(df.id[df.status == "completed"], df.started_at[df.status == "completed"]))


# where each launcher kill lands: a random moment of start-up (before any worker runs), as soon as
# workers exist, right after the next epoch row, right after the next trial row. At most two trials
# can finish per kill, so the 12-trial sweep cannot end before the last kill, however fast the machine.
KILL_POINTS = ["start-up"] * 3 + ["workers"] * 2 + ["epoch"] * 3 + ["trial"] * 2
LAUNCHER_SWEEP = dict(SLOW, grid=[{"model": "traditional", "cell": ["vrnn", "gru", "lstm"], "hidden_dim": [4, 8, 16, 32]}])


def wait_for_point(point: str, proc, results, rng) -> None:
    if point == "start-up":
        time.sleep(rng.uniform(0.0, 0.5))
        return
    if point == "workers":
        wait_for(lambda: workers(proc.pid) or proc.poll() is not None, "the launcher's workers")
        return
    table = "epochs" if point == "epoch" else "trials"
    before = rows_written(results, table)
    wait_for(lambda: rows_written(results, table) > before or proc.poll() is not None, f"a new row in {table}",
             timeout=300)


@pytest.mark.slow
def test_launcher_sigkilled_at_random_points_ten_times(write_spec, tmp_path, record_property):
    rng = random.Random(8)
    spec, results = write_spec(LAUNCHER_SWEEP), tmp_path / "r"
    points = rng.sample(KILL_POINTS, len(KILL_POINTS))
    completed_at: dict = {}
    landed = 0
    for kill, point in enumerate(points):
        proc = launch(spec, results)
        wait_for_point(point, proc, results, rng)
        running = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and everything it started, no warning
        proc.wait()
        check_store(results)
        done = completed_rows(results)
        landed += running and len(done) < 12  # a kill that hit a sweep with work left
        for tid, started in done.items():
            assert completed_at.setdefault(tid, started) == started, f"kill {kill}: {tid} ran twice"
    record_property("reliability launcher kills survived", landed)
    assert landed == KILLS, f"only {landed} of {KILLS} kills hit a running sweep with work left"
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 0, out.stdout + out.stderr
    compared, lost = lost_rows(results, {t.id for t in expand(load_spec(spec))}, 4)
    record_property("reliability rows compared", compared)
    record_property("reliability rows lost", lost)
    check_complete(results, 12, 4, completed_at)


@pytest.mark.slow
def test_trial_workers_sigkilled_at_random_points_ten_times(write_spec, tmp_path, record_property):
    """The launcher survives its workers' deaths: each killed trial runs again from its
    checkpoint in a fresh worker, the others go on, and the sweep completes. A kill comes
    after each new epoch row (a random worker, busy or idle): 72 epochs leave room for 10."""
    rng = random.Random(9)
    longer = dict(SLOW, train=dict(SLOW["train"], epochs=8))
    spec, results = write_spec(longer), tmp_path / "r"
    proc = launch(spec, results, "--max-failures", str(KILLS))
    kills = 0
    while kills < KILLS and proc.poll() is None:
        seen = rows_written(results, "epochs")
        wait_for(lambda: rows_written(results, "epochs") > seen or proc.poll() is not None, "a new epoch row",
                 timeout=300)
        alive = wait_for(lambda: workers(proc.pid) or proc.poll() is not None, "a live worker")
        if proc.poll() is None and alive is not True and len(completed_rows(results)) < 9:
            os.kill(rng.choice(alive), signal.SIGKILL)
            kills += 1
    record_property("reliability worker kills survived", kills)
    assert kills == KILLS, "the sweep ended before every kill landed"
    assert proc.wait(timeout=600) == 0
    check_store(results)
    check_complete(results, 9, 8, {})


@pytest.mark.slow
def test_a_worker_that_dies_too_often_is_recorded_failed_and_resumes_on_retry(write_spec, tmp_path):
    spec, results = write_spec(dict(SLOW, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}])), tmp_path / "r"
    proc = launch(spec, results, "--max-failures", "0")
    wait_for(lambda: has_epoch(results) or proc.poll() is not None, "the trial's first epoch")
    assert proc.poll() is None, "the trial ended before it could be killed"
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
    from launch.backends import Job
    from launch.runner import execute
    jobs = json.load(open(sys.argv[1]))
    random.Random(int(sys.argv[2])).shuffle(jobs)
    for job in jobs:
        execute(Job(job["id"], job["config"], sys.argv[3], {"sweep": "toy", "profile": "mini", "worker": sys.argv[2]}))
""")


@pytest.mark.slow
def test_many_processes_write_one_store_at_once(tmp_path, record_property):
    """8 writers (as SLURM array tasks on a shared filesystem), each given every trial
    in its own order: each trial runs exactly once, every row lands, none is torn."""
    from launch.spec import SweepSpec
    from prernn.settings import parse

    writers, trials = 8, expand(parse(SweepSpec, dict(TOY, profile="mini", seeds=list(range(5)))))
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"id": t.id, "config": t.config.to_dict()} for t in trials]))
    results = tmp_path / "r"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(jobs), str(w), str(results)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    finished = 0
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
        finished += 1
    record_property("reliability concurrent writers", finished)
    statuses = check_store(results)
    ep = pd.read_parquet(results / "epochs")
    compared, lost = lost_rows(results, {t.id for t in trials}, 2)
    record_property("reliability rows compared", compared)
    record_property("reliability rows lost", lost)
    assert len(statuses) == len(trials) == 25 and set(statuses.values()) == {"completed"}
    for log in (results / "runs").glob("*/log.txt"):
        assert log.read_text().count(" start ") == 1, f"{log}: ran more than once"
    assert len(ep) == 25 * 2 and not ep.duplicated(["id", "epoch"]).any()


@pytest.mark.slow
def test_a_trial_whose_worker_vanished_is_lost_not_running_and_reruns(write_spec, tmp_path, record_property):
    one = dict(SLOW, grid=[{"model": "traditional", "cell": "lstm", "hidden_dim": 8}], train=dict(SLOW["train"], epochs=6))
    spec, results = write_spec(one), tmp_path / "r"
    proc = launch(spec, results)
    wait_for(lambda: has_epoch(results) or proc.poll() is not None, "the trial's first epoch")
    assert proc.poll() is None, "the trial ended before it could be held"
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
    rerun = "1 completed" in sweep("status", spec, "--results-dir", results).stdout
    record_property("reliability lost trials rerun", int(rerun))
    assert rerun
