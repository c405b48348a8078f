"""execute(): run one trial in this process and record its outcome in the store.

Called by every backend, in whatever process or node it runs the trial. Never
raises for a trial's own errors: a raising trial is recorded as ``failed`` and a
NaN/inf loss as ``diverged``, with the error, so the rest of the sweep goes on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import threading
import time
import traceback
from datetime import datetime, timezone

import torch

from prernn.config import TrialConfig
from prernn.train.device import DeviceUnavailable, Placement
from prernn.trial import Diverged, keep_weights, release, run_trial
from records import Outcome, Status, trial_row

from .jobs import Job, Pruned


HEARTBEAT_SECONDS = 10.0  # how often a running trial touches runs/<id>/heartbeat


class Heartbeat:
    """Touches ``path`` every ``HEARTBEAT_SECONDS`` while a trial runs, so that a trial
    whose worker died without a trace (SIGKILL, OOM, a lost node) can be told from a
    running one: its heartbeat goes stale (``Store.run_state``)."""

    def __init__(self, path):
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            self.path.touch()

    def __enter__(self) -> "Heartbeat":
        self.path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def placement(cfg: TrialConfig, gpus: float = 0) -> Placement:
    """Where the trial trains. A GPU the scheduler gave it (``resources.gpus``) must train
    it: a trial that was given one but sees none refuses to start."""
    place = Placement.of_train(cfg.train)
    if gpus and not place.cuda:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise DeviceUnavailable(f"resources.gpus is {gpus:g}, but this trial sees no CUDA device "
                                f"(CUDA_VISIBLE_DEVICES={visible!r}, torch {torch.__version__}): a GPU given to "
                                "a trial must train it")
    return place


def execute(job: Job, report=None) -> Status:
    """Run ``job`` (its resolved config is plain data, as in its row: the typed
    ``TrialConfig`` is rebuilt and re-checked here). ``job.meta``: sweep, profile, label,
    git_commit, worker, gpus (the trial's ``resources.gpus``). After each evaluated epoch
    ``job.report(row)`` (a search's study) and ``report(row)`` (Ray Tune's scheduler) are
    called; either may stop the trial (``Pruned``). Returns the recorded status."""
    store, trial_id, meta = job.store, job.trial_id, job.meta
    run_dir = store.run_dir(trial_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = open(run_dir / ".lock", "w")  # one runner per trial at a time, whoever started it
    fcntl.flock(claim, fcntl.LOCK_EX)
    if store.status(trial_id) == Status.COMPLETED:  # someone else finished it while we waited
        return Status.COMPLETED
    (run_dir / "cancelled").unlink(missing_ok=True)  # cancelled before: it runs again now
    log_file = open(run_dir / "log.txt", "a", buffering=1)

    def log(msg: str) -> None:
        log_file.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} {msg}\n")

    history: list[dict] = []
    reports = [r for r in (job.report, report) if r is not None]

    def on_epoch(row: dict, rows: list[dict]) -> None:
        history[:] = rows
        store.write_epochs(trial_id, rows)
        log(f"epoch {row['epoch']}: " + ", ".join(f"{k}={v:.5g}" for k, v in row.items() if k != "epoch"))
        if all(v == v for v in row.values() if isinstance(v, float)):  # epochs that were evaluated
            for r in reports:
                r(row)

    started, wall, cpu = datetime.now(timezone.utc), time.monotonic(), time.process_time()
    log(f"start {meta.get('label', '')} on {socket.gethostname()} pid {os.getpid()} worker {meta.get('worker')}")
    where = {}
    try:
        cfg = TrialConfig.from_dict(job.config)
        with Heartbeat(run_dir / "heartbeat"):
            place = placement(cfg, meta.get("gpus", 0))
            where = {"device": place.name, "gpu": place.gpu}
            result = run_trial(cfg, run_dir, on_epoch=on_epoch, log=log, place=place)
        if len(result["history"]) != len(history):  # killed after its last checkpoint, before that epoch's rows
            store.write_epochs(trial_id, result["history"])  # were written: the resumed run trained no epoch
        outcome = Outcome(Status.COMPLETED, history=result["history"], metrics=result["metrics"],
                          parameters=result["parameters"], **where)
    except Pruned:
        outcome = Outcome.stopped(Status.PRUNED, history, **where)
    except Diverged as e:
        outcome = Outcome(Status.DIVERGED, f"Diverged: {e}", history, **where)
    except Exception as e:  # noqa: BLE001  - any trial error is recorded, not raised
        if disk_fault(e):  # the store's disk, not the trial: nothing is recorded, a rerun resumes it
            raise
        outcome = Outcome(Status.FAILED, f"{type(e).__name__}: {e}", history, **where)
        log(traceback.format_exc())
    outcome.started_at = started
    outcome.wall_seconds, outcome.cpu_seconds = time.monotonic() - wall, time.process_time() - cpu
    ended = outcome.status in (Status.COMPLETED, Status.PRUNED, Status.DIVERGED)  # a failed one may resume
    if ended:
        keep_weights(job.config, run_dir)  # before its row: a recorded trial has the weights it keeps
    store.write_trial(trial_row(trial_id, job.config, meta, outcome))
    if ended:
        release(run_dir)  # after its row: killed before it, the trial still resumes
    # after its row too: a log's "completed" is a recorded completion (killed before the row, the
    # trial reruns from its last checkpoint and completes once)
    log(f"{outcome.status}" + (f": {outcome.error}" if outcome.error else ""))
    log_file.close()
    return outcome.status


def disk_fault(e: BaseException) -> bool:
    """A full disk or quota, or a filesystem gone read-only: the launcher stops and says so."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def record_stopped(job: Job, status: Status, error: str | None = None) -> None:
    """Record a trial that ended before it could record itself (ASHA pruned it, its
    worker died): its last finished epoch's metrics, and ``status``. It ran elsewhere:
    its wall and CPU time are unknown here (null), not zero."""
    store = job.store
    if store.status(job.trial_id) is not None:
        return
    path = store.epochs_dir / f"{job.trial_id}.parquet"
    history = []
    if path.is_file():
        import pyarrow.parquet as pq

        history = pq.read_table(path).to_pylist()
    run_dir = store.run_dir(job.trial_id)
    if status == Status.PRUNED:  # ended (ASHA stopped it): as ``execute`` does
        keep_weights(job.config, run_dir)
    store.write_trial(trial_row(job.trial_id, job.config, job.meta, Outcome.stopped(status, history, error=error)))
    if status == Status.PRUNED:
        release(run_dir)


def ensure_pretrained(configs: list[TrialConfig], log=print) -> None:
    """Train (or find) each cached mini pre-training these trials start from, once per
    recipe and stream, before they start (raises ``PretrainingRefused``)."""
    import json

    from prernn.trial import backbone_weights, stream_inputs

    seen = set()
    for config in configs:
        for stream in config.streams:
            recipe = json.dumps([config.backbone.to_dict(), config.task, config.data.source,
                                 stream_inputs(config, stream)], sort_keys=True)
            if recipe not in seen:
                seen.add(recipe)
                backbone_weights(config, stream, log=log)


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, n))
