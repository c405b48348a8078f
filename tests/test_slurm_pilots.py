"""Pilot jobs (``launch.backends.slurm_pilots``): the hand-over protocol in process, a pilot
played by a thread running the real ``serve`` loop on real toy trials; the real SLURM cluster
runs them in ``test_search.py`` and below."""

import json
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from launch.backends import create
from launch.backends.slurm_pilots import Pilots, decode, encode, serve
from launch.expand import expand
from launch.launcher import Launcher
from launch.spec import load_spec

from .conftest import ROOT, TOY, wait_for


class ThreadJob:
    """A pilot 'SLURM job': ``serve`` in a thread (done when it has returned)."""

    def __init__(self, folder, n, orphaned_after):
        self.job_id = str(n)
        self.thread = threading.Thread(target=serve, args=(folder, 1, orphaned_after), daemon=True)
        self.thread.start()

    def done(self):
        return not self.thread.is_alive()


@pytest.fixture
def toy_jobs(write_spec, tmp_path):
    path = write_spec(dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": [2, 4, 8]}]))
    spec = load_spec(path)
    trials = expand(spec, str(path))
    with Launcher(spec, trials, tmp_path / "r", create("local", spec, {})) as launcher:
        launcher.store.create()
        yield [launcher.job(t) for t in trials], launcher.store.root


def pilots(root, orphaned_after=60.0, time_limit_s=3600):
    started, remembered = [], []

    def start(folder):
        started.append(ThreadJob(folder, len(started), orphaned_after))
        return started[-1]

    return Pilots(root, start, lambda job, job_id, pilot: remembered.append((job.trial_id, job_id)), time_limit_s), \
        started, remembered


def run_to_end(pool, job):
    a = pool.submit(job)
    wait_for(lambda: pool.done(a), f"trial {job.trial_id} to end", timeout=60)
    return pool.said(a)


def test_one_pilot_runs_jobs_one_after_another_then_stops(toy_jobs):
    jobs, root = toy_jobs
    pool, started, remembered = pilots(root)
    said = [run_to_end(pool, job) for job in jobs]
    assert said == [{"status": "completed", "error": None}] * 3
    assert len(started) == 1 and remembered == [(j.trial_id, "0") for j in jobs]  # one job served all three
    rows = pd.read_parquet(root / "trials")
    assert sorted(rows.id) == sorted(j.trial_id for j in jobs) and set(rows.status) == {"completed"}
    assert set(rows.worker) == {"slurm/?"}  # the trial says which pilot ran it (no SLURM_JOB_ID here)
    pool.close()
    wait_for(lambda: started[0].done(), "the stopped pilot to exit", timeout=10)


def test_an_orphaned_pilot_exits_and_a_job_it_never_claimed_goes_to_a_fresh_one(toy_jobs):
    jobs, root = toy_jobs
    pool, started, remembered = pilots(root, orphaned_after=0.5)
    assert run_to_end(pool, jobs[0])["status"] == "completed"
    wait_for(lambda: started[0].done(), "the pilot to leave a launcher silent for 0.5 s", timeout=10)
    assert run_to_end(pool, jobs[1])["status"] == "completed"  # handed to the gone pilot first
    assert len(started) == 2 and remembered == [(jobs[0].trial_id, "0"), (jobs[1].trial_id, "0"),
                                                (jobs[1].trial_id, "1")]
    assert not list((root / "slurm/pilots").glob("*/*.job"))  # nothing left unclaimed
    pool.close()


def test_a_requeued_pilot_resumes_the_job_it_had_claimed_first(toy_jobs, tmp_path):
    jobs, root = toy_jobs
    folder = root / "slurm/pilots/p"
    folder.mkdir(parents=True)
    (folder / f"{jobs[0].trial_id}.run").write_bytes(encode(jobs[0]))  # claimed before the requeue
    (folder / f"{jobs[1].trial_id}.job").write_bytes(encode(jobs[1]))
    (folder / "stop").touch()  # served first, then stops
    assert serve(folder, 1) == 2
    done = sorted(p.name for p in folder.glob("*.done"))
    assert done == sorted(f"{j.trial_id}.done" for j in jobs[:2]) and not list(folder.glob("*.run"))
    assert json.loads((folder / f"{jobs[0].trial_id}.done").read_text())["status"] == "completed"


def test_a_trial_its_pilot_finished_is_completed_in_the_queues_view(tmp_path, monkeypatch):
    """The pilot's job goes on running other trials; ``status`` and the planner must not call a
    finished one queued."""
    from types import SimpleNamespace

    from launch.backends import slurm_queue

    (tmp_path / "slurm/pilots/p").mkdir(parents=True)
    for tid in "ab":
        (tmp_path / f"slurm/7-{tid}.json").write_text(json.dumps(
            {"job_id": "7", "trials": [tid], "jobs": ["7"], "submitted_at": time.time(), "pilot": "p"}))
    (tmp_path / "slurm/pilots/p/a.done").write_text('{"status": "completed", "error": null}')
    monkeypatch.setattr(slurm_queue.subprocess, "run", lambda cmd, **kw: SimpleNamespace(
        stdout="7|RUNNING\n" if cmd[0] == "squeue" else ""))
    assert slurm_queue.trial_states(tmp_path) == {"a": ("COMPLETED", "7"), "b": ("RUNNING", "7")}


def test_an_idle_pilot_past_half_its_time_limit_is_stopped_and_replaced(toy_jobs):
    jobs, root = toy_jobs
    pool, started, _ = pilots(root, time_limit_s=0)  # old as soon as it has started
    assert run_to_end(pool, jobs[0])["status"] == "completed"
    assert run_to_end(pool, jobs[1])["status"] == "completed"
    assert len(started) == 2
    wait_for(lambda: started[0].done(), "the old pilot to exit", timeout=10)
    assert not started[1].done()  # the fresh one serves on
    pool.close()


class ProcessJob:
    """A pilot 'SLURM job' in a process of its own, so that it may kill itself."""

    def __init__(self, folder):
        code = "import sys; from pathlib import Path; from launch.backends.slurm_pilots import serve; serve(Path(sys.argv[1]), 1)"
        self.process = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT)
        self.job_id = str(self.process.pid)

    def done(self):
        return self.process.poll() is not None

    def cancel(self, check=True):  # scancel's part: SIGTERM, which submitit ignores in a real pilot
        pass


def test_a_cancelled_trial_stops_at_once_its_pilot_killed(write_spec, tmp_path):
    path = write_spec(dict(TOY, train=dict(TOY["train"], epochs=5000)))
    spec = load_spec(path)
    (trial,) = expand(spec, str(path))[:1]
    with Launcher(spec, [trial], tmp_path / "r", create("local", spec, {})) as launcher:
        launcher.store.create()
        started = []
        pool = Pilots(launcher.store.root, lambda folder: started.append(ProcessJob(folder)) or started[-1],
                      lambda *_: None, 3600)
        a = pool.submit(launcher.job(trial))
        try:
            wait_for(lambda: list(launcher.store.root.glob("epochs/*.parquet")), "an epoch", timeout=120)
            pool.cancel(a)
            assert started[0].process.wait(timeout=30) == -signal.SIGKILL  # 5000 epochs would take minutes
        finally:
            started[0].process.kill()
        assert not a.done_file.exists() and not launcher.store.recorded(trial.id)
        assert (launcher.store.run_dir(trial.id) / "checkpoint.pt").exists()  # a rerun resumes it


def test_a_job_travels_as_json_with_its_study_reporter(toy_jobs):
    """Nothing a pilot reads from the store is unpickled: a job and its search reporter are fields."""
    from dataclasses import replace

    from launch.search import StudyReporter

    jobs, root = toy_jobs
    reporter = StudyReporter(str(root), None, "s", 3, "median", "test_loss", 4)
    job = decode(encode(replace(jobs[0], report=reporter)))
    assert job == replace(jobs[0], report=job.report) and vars(job.report) == vars(reporter)
    with pytest.raises(TypeError, match="StudyReporter"):
        encode(replace(jobs[0], report=print))
