"""A run of a sweep, from plan to result: ``Launcher``. The command line parses and prints; this decides.

A ``Launcher`` holds one sweep's store (its ``.lock``: one launcher per store) and one backend:

- ``plan``: the spec's trials less those the store has recorded (failed and diverged ones
  again with ``retry_failed``) and those the backend's scheduler holds; a trial the scheduler
  says is running but whose heartbeat is stale is cancelled there and planned again.
- ``run``: every planned trial on the backend. An asynchronous backend (local, Ray) takes a job
  the moment a slot frees (``drive``: submit, wait FIRST_COMPLETED, record, resubmit a job whose
  worker died); SLURM takes a grid at once, as job arrays. A search (``launch.search``) goes
  through ``drive`` on every backend that can wait for its trials, SLURM with ``--wait``
  included; the rounds of ``--until-decided`` go through ``run``.
- ``cancel``: ``request_cancel`` (``prernn-sweep cancel``, from any process that sees the store)
  asks the launcher holding the store to stop. It cancels its running trials, which end as
  ``cancelled`` (``Store.run_state``); a rerun resumes them from their last epoch.

Messages go to the ``launch`` loggers: the command line decides how they print.
Progress goes to ``Events`` (``launch.jobs``), a no-op unless the caller gives one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from records import BAD, Status, Store, git_commit, is_store

from .backends.base import Running
from .jobs import Events, Job

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often a waiting launcher looks for a cancel request
CANCEL_FILE, LAUNCHER_FILE = ".cancel", ".launcher.json"


class Refused(RuntimeError):
    """The run cannot go on (another launcher holds the store, the scheduler or a pre-training
    refused): the message says why and what to change. Nothing of this run was left behind."""


class Quiet:
    """``Events`` that tell no one (a context manager, as ``Launcher.progress`` gives them)."""

    def __enter__(self) -> "Quiet":
        return self

    def __exit__(self, *exc) -> None: ...
    def started(self, trial_id: str, label: str | None = None) -> None: ...
    def finished(self, trial_id: str, status: str) -> None: ...


@dataclass
class Plan:
    pending: list  # the trials to run (launch.expand.Trial)
    recorded: int  # trials of the spec the store holds and that stay as they are
    queued: set[str] = field(default_factory=set)  # trials the scheduler holds already (not submitted again)


def launch_meta(spec) -> dict:
    """The provenance every trial of this launch carries (``records.trial_row``)."""
    return {"sweep": spec.name, "profile": spec.profile, "git_commit": git_commit(), "gpus": spec.resources.gpus}


class Launcher:
    """One run of ``spec``'s ``trials`` on ``backend``, recorded in ``results``. Use it as a context
    manager: entering takes the store's lock (``Refused`` when another launcher holds it);
    leaving releases it, and removes the store directory when this run created it and recorded
    nothing. ``progress(labels, total)`` gives the ``Events`` (a context manager) of each batch of work."""

    def __init__(self, spec, trials, results: Path, backend, *, lost_after: float = 120, retry_failed: bool = False,
                 progress: Callable | None = None):
        self.spec, self.trials, self.backend = spec, trials, backend
        self.store = Store(results, spec.task)
        self.lost_after, self.retry_failed = lost_after, retry_failed
        self.progress = progress or (lambda labels, total=None: Quiet())
        self.meta = launch_meta(spec)
        self.cancelled: list[str] = []  # trials this run cancelled on request
        self.stopped = False  # a cancel request was served: nothing more starts
        self.created = False
        self._lock = None

    # the store's lock --------------------------------------------------------------------------------

    def __enter__(self) -> "Launcher":
        root = self.store.root
        self.created = not root.exists()
        if not self.created and not is_store(root) and (other := sorted(p.name for p in root.iterdir()
                                                                         if not p.name.startswith("."))):
            raise Refused(f"{root} is not a sweep's store: it holds other files ({', '.join(other[:3])}"
                          f"{', ...' if len(other) > 3 else ''}); give --results-dir a new or empty directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._lock = open(root / ".lock", "w")
        except OSError as e:  # read-only, no permission, a file in the way
            raise Refused(f"cannot write the results directory {root}: {e.strerror or e}; give --results-dir a "
                          "writable directory") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise Refused(f"another launcher is running this sweep in {root}") from None
        (root / CANCEL_FILE).unlink(missing_ok=True)  # a request meant for an earlier launcher
        # it serves cancel requests when it drives the trials itself (a SLURM grid's jobs are the scheduler's)
        serves = self.backend.asynchronous and (self.spec.search is not None or not self.backend.batch_grids)
        _write_json(root / LAUNCHER_FILE, {"pid": os.getpid(), "host": socket.gethostname(), "serves": serves,
                                           "backend": self.backend.name, "started_at": time.time()})
        return self

    def __exit__(self, *exc) -> None:
        root = self.store.root
        (root / LAUNCHER_FILE).unlink(missing_ok=True)  # a cancel request still there was not served
        if self.created and not self.store.statuses() and not self.backend.held(root) \
                and not any((root / "runs").glob("*")):  # nothing of this run is anywhere: no row, job or trial begun
            shutil.rmtree(root, ignore_errors=True)
        self._lock.close()

    # plan --------------------------------------------------------------------------------------------

    def plan(self) -> Plan:
        """What this run must do; a trial the scheduler calls running whose heartbeat is stale is cancelled there."""
        recorded = self.store.statuses()
        queued = self.backend.active_trials(self.store.root)
        hung = {tid for tid in queued if self.store.run_state(tid, self.lost_after) == Status.LOST}
        if hung:  # the scheduler says running, the heartbeat says dead: end them, run them again
            self.backend.cancel_trials(self.store.root, hung)
            log.info(f"{len(hung)} trial(s) without a heartbeat for {self.lost_after} s: cancelled, rerunning")
            queued -= hung
        again = BAD if self.retry_failed else set()
        pending = [t for t in self.trials if t.id not in queued and (recorded.get(t.id) in (None, *again))]
        stays = sum(t.id in recorded and recorded[t.id] not in again for t in self.trials)
        return Plan(pending, stays, queued & {t.id for t in self.trials})

    def start(self, trials) -> None:
        """Pre-train what ``trials`` start from (``Refused`` if a pre-training fails its gate), then
        make the store and record the spec."""
        if self.spec.backbone.pretrained == "cache" and trials:
            from prernn.train.pretrain import PretrainingRefused

            from .runner import ensure_pretrained

            try:
                ensure_pretrained([t.config for t in trials], log.info)
            except PretrainingRefused as e:
                raise Refused(str(e)) from None
        self.store.create()
        self.store.write_spec(self.spec)

    def job(self, trial, report=None) -> Job:
        return Job(trial.id, trial.config.to_dict(), str(self.store.root), {**self.meta, "label": trial.label}, report)

    # run ---------------------------------------------------------------------------------------------

    def run(self, trials) -> bool:
        """Run ``trials`` on the backend with progress; True once they have all ended (a queue
        backend without ``wait`` only submits them)."""
        jobs = [self.job(t) for t in trials]
        if not jobs:
            return True
        with self.progress({j.trial_id: j.meta["label"] for j in jobs}) as events:
            if not self.backend.asynchronous or self.backend.batch_grids:
                return self.backend.run(jobs, events)
            queue = iter(jobs)
            self.drive(lambda: next(queue, None), lambda job, status: None, events)
            return True

    def drive(self, next_job: Callable[[], Job | None], ended: Callable[[Job, str], None], events: Events) -> None:
        """Keep the backend's slots busy: whenever one is free, start ``next_job()`` (None: nothing to
        start now); hand each job that ends to ``ended``, until nothing runs and nothing is left.
        A cancel request (``request_cancel``) cancels the running jobs and starts no more."""
        backend = self.backend
        backend.open()
        running = Running(backend, events)
        try:
            while True:
                if (self.store.root / CANCEL_FILE).exists():
                    self._cancel(running, events)
                while running.free and not self.stopped and (job := next_job()) is not None:
                    running.start(job, job.meta.get("label"))
                if not running:
                    return
                for job, status in running.ended(POLL_SECONDS):
                    ended(job, status)
                    events.finished(job.trial_id, status)
        finally:
            backend.close()

    def _cancel(self, running: Running, events: Events) -> None:
        for handle, job in list(running.handles.items()):
            self.backend.cancel(handle)
            self.store.mark_cancelled(job.trial_id)
            self.cancelled.append(job.trial_id)
            events.finished(job.trial_id, Status.CANCELLED)
        running.handles.clear()
        self.stopped = True
        log.info(f"cancelled on request: {len(self.cancelled)} running trial(s) stopped; "
                 "a rerun resumes them from their last epoch")
        (self.store.root / CANCEL_FILE).unlink(missing_ok=True)

    def search(self, url: str | None):
        """A ``search:`` spec: Optuna asks, the backend runs (``launch.search``). Returns the study."""
        from . import search

        if not self.backend.ends_trials:
            raise Refused(f"a search asks for its next points once the last have ended: with --backend "
                          f"{self.backend.name} add --wait")
        self.start([search.trial_for(self.spec, {})])
        return search.run(self, url)

    def add_seeds(self, new, max_seeds: int) -> bool:
        """A round of ``--until-decided`` (``cli.seeding`` decides which seeds): ``new`` is recorded
        in the store as added to the spec's plan, so that every reader tests the same trials the
        same way; those not recorded yet run. True once they have all ended (and none was cancelled)."""
        from records import arm_id, plan_id

        plan = plan_id(t.id for t in self.trials)
        added = {**(self.store.seeding(plan) or {}).get("trials", {}), **{t.id: arm_id(t.config) for t in new}}
        self.store.write_seeding(plan, {"trials": added, "max_seeds": max_seeds})  # from now on: tested sequentially
        todo = [t for t in new if self.store.status(t.id) is None]
        if not todo:
            return True
        self.start(todo)
        return self.run(todo) and not self.stopped

    def seeds_added(self) -> int:
        from records import plan_id

        return len((self.store.seeding(plan_id(t.id for t in self.trials)) or {}).get("trials", {}))


def request_cancel(results: Path, timeout: float = 60.0) -> str:
    """Ask the launcher holding the store in ``results`` to cancel its running trials and start no
    more; waits until it has. Says what was cancelled ('' when no launcher holds the store)."""
    root = Path(results)
    if not _held(root):
        return ""
    who, deadline = {}, time.monotonic() + 5
    while not who and time.monotonic() < deadline:  # it writes the file just after it takes the lock
        try:
            who = json.loads((root / LAUNCHER_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.05)
    if not who.get("serves"):  # it follows a scheduler's jobs (cancelled there): it ends when they have
        return ""
    _write_json(root / CANCEL_FILE, {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time()})
    deadline = time.monotonic() + timeout
    while (root / CANCEL_FILE).exists():  # the launcher removes it once it has cancelled
        if not _held(root):  # it ended on its own first
            (root / CANCEL_FILE).unlink(missing_ok=True)
            return ""
        if time.monotonic() > deadline:  # busy before its trials (pre-training): the request stays for it
            raise TimeoutError(f"the launcher of {root} (pid {who.get('pid', '?')} on {who.get('host', '?')}) has "
                               f"not answered within {timeout:.0f} s; the request stays: it stops before it starts "
                               "any trial")
        time.sleep(0.1)
    return (f"the {who.get('backend', '?')} launcher's running trials (pid {who.get('pid', '?')} on "
            f"{who.get('host', '?')}); a rerun resumes them")


def _held(root: Path) -> bool:
    """Whether a launcher holds the store's lock now."""
    try:
        lock = open(root / ".lock", "r+")
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
