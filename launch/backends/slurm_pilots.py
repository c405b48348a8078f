"""Pilot jobs: one long-lived SLURM job per slot that runs a search's trials one after another.

A fresh SLURM job per trial costs its slot a few seconds each time (slurmd launching the
batch step, Python importing torch and the trial code): 17% of a 20 s trial on a 2-core
node (BENCHMARKS.md, issue 27). So a search run with ``--wait`` keeps at most
``slurm.max_running`` pilots - submitit jobs that import once and then serve - and hands
each point to an idle one through the shared filesystem, in the pilot's folder
``<store>/slurm/pilots/<name>/``:

- the launcher writes ``<trial>.job`` (the ``Job`` as JSON, atomically: plain data, and a
  search's ``StudyReporter`` by its fields; nothing in the store is unpickled);
- the pilot claims it by renaming it ``<trial>.run``, runs ``launch.runner.execute`` and
  writes ``<trial>.done`` (its status, atomically) - the trial's row is in the store
  already, written by ``execute`` as on every backend;
- ``<trial>.cancel``: the launcher cancelled the trial; the pilot kills itself at once;
- ``stop``: the launcher needs the pilot no more; it exits once idle.

A pilot also exits when idle and the launcher's ``heartbeat`` file (touched every few
seconds while it waits) has not changed for ``ORPHANED_AFTER`` seconds of the pilot's own
clock (a killed launcher: no clock skew between nodes matters). A pilot serves trials for
the first half of its time limit (``resources.timeout_min``) and is then stopped when idle
and replaced (ours: a trial that starts late and reaches the limit is requeued by submitit
and resumes from its last epoch, as any trial does). A pilot that is requeued (preemption,
time limit) resumes the trial it had claimed first. Cancelling a trial cancels its pilot's
job; a point handed to a pilot that ended before claiming it goes to a fresh pilot.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..jobs import Job

ORPHANED_AFTER = 60.0  # seconds an idle pilot waits on a silent launcher
POLL_SECONDS = 0.1  # how often an idle pilot looks for a job
BEAT_SECONDS = 5.0  # how often the launcher touches its heartbeat


def encode(job: Job) -> bytes:
    """A job as JSON: its fields, and its report (a search's ``StudyReporter``, or none) by its fields."""
    from ..search import StudyReporter

    if job.report is not None and not isinstance(job.report, StudyReporter):
        raise TypeError(f"a pilot job takes a search's StudyReporter as a job's report, not {job.report!r}")
    report = None if job.report is None else job.report.__getstate__()
    return json.dumps({"trial_id": job.trial_id, "config": job.config, "store_root": job.store_root,
                       "meta": job.meta, "report": report}).encode()


def decode(data: bytes) -> Job:
    from ..search import StudyReporter

    fields = json.loads(data)
    if (report := fields.pop("report")) is not None:
        fields["report"] = StudyReporter(**{k: v for k, v in report.items() if not k.startswith("_")})
    return Job(**fields)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# the pilot's side: a SLURM job ---------------------------------------------------------------------

def serve(folder: Path, threads: int, orphaned_after: float = ORPHANED_AFTER) -> int:
    """Run the jobs handed to this pilot until told to stop or orphaned; returns how many ran."""
    from ..runner import execute, set_threads

    set_threads(threads)
    job_id = os.environ.get("SLURM_JOB_ID", "?")
    _atomic(folder / "alive.json", json.dumps({"job_id": job_id, "started_at": time.time()}).encode())
    heartbeat, ran = folder.parent / "heartbeat", 0
    seen, since = None, time.monotonic()
    while True:
        claimed = sorted(folder.glob("*.run"))  # one claimed before a requeue comes first
        for handed in [] if claimed else sorted(folder.glob("*.job")):
            try:
                os.rename(handed, handed.with_suffix(".run"))
            except FileNotFoundError:  # withdrawn by the launcher
                continue
            claimed = [handed.with_suffix(".run")]
            break
        if claimed:
            run = claimed[0]
            job = decode(run.read_bytes())
            running = threading.Event()
            threading.Thread(target=_killed_on, args=(run.with_suffix(".cancel"), running), daemon=True).start()
            try:
                status, error = execute(replace(job, meta={**job.meta, "worker": f"slurm/{job_id}"})), None
            except Exception as e:  # the pilot is broken: say so, then die (its slot gets a fresh one)
                _atomic(run.with_suffix(".done"), json.dumps({"status": None, "error": repr(e)}).encode())
                run.unlink()
                raise
            finally:
                running.set()
            _atomic(run.with_suffix(".done"), json.dumps({"status": str(status), "error": error}).encode())
            run.unlink()
            ran += 1
            since = time.monotonic()
            continue
        if (folder / "stop").exists():
            return ran
        beat = heartbeat.stat().st_mtime_ns if heartbeat.exists() else None
        if beat != seen:
            seen, since = beat, time.monotonic()
        elif time.monotonic() - since > orphaned_after:
            return ran
        time.sleep(POLL_SECONDS)


def _killed_on(flag: Path, ended: threading.Event) -> None:
    """The pilot dies at once when the launcher cancels its trial (submitit lets a job ride out
    scancel's SIGTERM until SLURM's KillWait: 30 s by default, and the trial would go on)."""
    while not ended.wait(POLL_SECONDS):
        if flag.exists():
            os.kill(os.getpid(), signal.SIGKILL)


def pilot_task():
    import submitit

    class PilotTask(submitit.helpers.Checkpointable):
        """Serves trials; on preemption/timeout submitit requeues it with the same folder."""

        def __call__(self, folder: str, threads: int) -> int:
            return serve(Path(folder), threads)

    return PilotTask


# the launcher's side ---------------------------------------------------------------------------

@dataclass(eq=False)
class Pilot:
    folder: Path
    job: object  # submitit's Job

    def started_at(self) -> float | None:
        try:
            return json.loads((self.folder / "alive.json").read_text())["started_at"]
        except (OSError, ValueError):
            return None  # not started yet


@dataclass(eq=False)
class Assignment:
    """A job handed to a pilot: the handle ``SlurmBackend.submit`` returns."""

    job: Job
    pilot: Pilot

    @property
    def file(self) -> Path:
        return self.pilot.folder / f"{self.job.trial_id}.job"

    @property
    def done_file(self) -> Path:
        return self.pilot.folder / f"{self.job.trial_id}.done"


class Pilots:
    """At most ``slots`` pilots of one store, each serving one job at a time.

    ``start(folder)`` submits a pilot job serving ``folder``; ``remember(job, slurm_job_id)``
    records a hand-over for ``status`` and ``cancel`` (``slurm_queue.trial_states``)."""

    def __init__(self, root: Path, start: Callable[[Path], object], remember: Callable[[Job, str, str], None],
                 time_limit_s: float):
        self.dir = root / "slurm" / "pilots"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start, self.remember, self.time_limit_s = start, remember, time_limit_s
        self.idle: list[Pilot] = []
        self.busy: set[Assignment] = set()
        self._beat = float("-inf")

    def submit(self, job: Job) -> Assignment:
        self.beat(force=True)
        for old in [p for p in self.idle if self._old(p)]:
            self.idle.remove(old)
            self._stop(old)
        a = Assignment(job, self.idle.pop(0) if self.idle else self._new())
        self._hand(a)
        return a

    def done(self, a: Assignment) -> bool:
        """Whether ``a`` has ended (its pilot said so, or ended itself); a job its pilot ended
        without claiming goes to a fresh pilot instead."""
        self.beat()
        if a.done_file.exists():
            return True
        if not a.pilot.job.done():
            return False
        if a.done_file.exists():
            return True
        try:
            a.file.unlink()  # never claimed: the pilot left (orphaned, stopped) first
        except FileNotFoundError:
            return True  # it died running the job
        a.pilot = self._new()
        self._hand(a)
        return False

    def said(self, a: Assignment) -> dict | None:
        """What the pilot wrote when ``a`` ended ({status, error}), None if it died first; a pilot
        that finished the job cleanly takes the next one."""
        self.busy.discard(a)
        try:
            said = json.loads(a.done_file.read_text())
        except (OSError, ValueError):
            return None
        if said["error"] is None:
            self.idle.append(a.pilot)
        return said

    def cancel(self, a: Assignment) -> None:
        """Stop the trial now (the pilot kills itself: checkpoints are written atomically) and
        cancel the pilot's SLURM job."""
        self.busy.discard(a)
        (a.pilot.folder / f"{a.job.trial_id}.cancel").touch()
        a.pilot.job.cancel(check=False)

    def close(self) -> None:
        """Idle pilots exit; busy ones (only if the launcher stops early) finish their trial first."""
        for pilot in [*self.idle, *(a.pilot for a in self.busy)]:
            self._stop(pilot)
        self.idle, self.busy = [], set()

    def beat(self, force: bool = False) -> None:
        if force or time.monotonic() - self._beat >= BEAT_SECONDS:
            (self.dir / "heartbeat").touch()
            self._beat = time.monotonic()

    def _new(self) -> Pilot:
        folder = self.dir / uuid.uuid4().hex[:12]
        folder.mkdir()
        return Pilot(folder, self.start(folder))

    def _hand(self, a: Assignment) -> None:
        self.remember(a.job, a.pilot.job.job_id, a.pilot.folder.name)  # recorded before the pilot can run it
        _atomic(a.file, encode(a.job))
        self.busy.add(a)

    def _old(self, pilot: Pilot) -> bool:
        started = pilot.started_at()
        return started is not None and time.time() - started > self.time_limit_s / 2

    def _stop(self, pilot: Pilot) -> None:
        (pilot.folder / "stop").touch()
