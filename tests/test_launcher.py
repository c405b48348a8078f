"""The launcher in process: a run is a Python object, not only a command line."""

import logging

import pandas as pd
import pytest

from launch.backends import create
from launch.expand import expand
from launch.launcher import Launcher, Refused, request_cancel
from launch.spec import load_spec


@pytest.fixture
def toy(write_spec):
    path = write_spec()
    spec = load_spec(path)
    return spec, expand(spec, str(path))


def test_plan_run_then_plan_again_runs_nothing(toy, tmp_path, caplog):
    spec, trials = toy
    results = tmp_path / "r"
    events = []

    class Recorder:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def started(self, trial_id, label=None):
            events.append(("started", trial_id))

        def finished(self, trial_id, status):
            events.append((status, trial_id))

    with Launcher(spec, trials, results, create("local", spec, {"workers": 2}),
                  progress=lambda labels, total=None: Recorder()) as launcher:
        plan = launcher.plan()
        assert [t.id for t in plan.pending] == [t.id for t in trials] and plan.recorded == 0
        launcher.start(plan.pending)
        assert launcher.run(plan.pending) and not launcher.stopped
    assert sorted(events) == sorted([("started", t.id) for t in trials] + [("completed", t.id) for t in trials])
    assert (pd.read_parquet(results / "trials").status == "completed").sum() == len(trials)

    with caplog.at_level(logging.INFO, logger="launch"), \
            Launcher(spec, trials, results, create("local", spec, {}), retry_failed=True) as again:
        plan = again.plan()
        assert plan.pending == [] and plan.recorded == len(trials)


def test_one_launcher_per_store_and_an_unused_store_is_removed(toy, tmp_path):
    spec, trials = toy
    results = tmp_path / "r"
    backend = create("local", spec, {})
    with Launcher(spec, trials, results, backend):
        with pytest.raises(Refused, match="another launcher is running this sweep"):
            with Launcher(spec, trials, results, backend):
                pass
    assert not results.exists()  # this run created it and nothing of it was left
    assert request_cancel(results) == ""  # no launcher: nothing to cancel


def test_a_cancel_request_before_the_trials_start_stops_them_all(toy, tmp_path):
    spec, trials = toy
    results = tmp_path / "r"
    with Launcher(spec, trials, results, create("local", spec, {"workers": 2})) as launcher:
        launcher.start(trials)  # e.g. still pre-training when the request comes
        with pytest.raises(TimeoutError, match="the request stays"):
            request_cancel(results, timeout=0.5)
        assert launcher.run(trials) and launcher.stopped and launcher.cancelled == []
    assert not list(results.glob("trials/*.parquet")) and not list(results.glob("runs/*"))  # nothing started


def test_a_trial_killed_after_its_last_checkpoint_keeps_every_epoch_row(toy, tmp_path):
    """Killed between its last epoch's checkpoint and that epoch's rows: the rerun trains no epoch,
    and still records every epoch row (once seen as 47 of 48 rows after the launcher-kill test)."""
    import pyarrow.parquet as pq

    from launch.runner import execute
    from prernn.trial import run_trial

    spec, trials = toy
    with Launcher(spec, trials[:1], tmp_path / "r", create("local", spec, {})) as launcher:
        launcher.start(trials[:1])
        job, store, tid = launcher.job(trials[0]), launcher.store, trials[0].id
        history = run_trial(job.config, store.run_dir(tid), log=lambda m: None)["history"]  # its last checkpoint
        store.write_epochs(tid, history)
        epochs = store.epochs_dir / f"{tid}.parquet"
        full = pq.read_table(epochs)
        store.write_epochs(tid, history[:-1])  # as if killed before the last rows landed
        assert execute(job) == "completed"
        assert "resuming after epoch" in (store.run_dir(tid) / "log.txt").read_text()
        assert pq.read_table(epochs).equals(full)
