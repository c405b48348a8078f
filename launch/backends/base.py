"""The one interface every backend implements, in the spirit of Hydra's launchers and
submitit's executors.

A backend is built from the validated spec and its own typed ``Options`` (a settings
``Section``: the command line offers each field as a flag, ``--max-failures`` for
``max_failures``, and refuses a flag the chosen backend does not take). It receives
plain data - ``Job``s (trial id, resolved config, store directory, provenance) - and
runs each through ``launch.runner.execute`` in some process, reporting progress
through the callbacks. An asynchronous backend (local, Ray, SLURM with ``wait``) takes
jobs one by one (``submit``, ``wait`` FIRST_COMPLETED, ``cancel``) and the launcher keeps
its ``slots`` busy (``launch.launcher.Launcher.drive``); the others, and a SLURM grid, take
a batch (``run``). It need not return results: ``execute`` records every outcome in the
store, which is the source of truth. Backends whose jobs outlive the launcher (queues)
also say which trials they hold and cancel them; the others hold none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from prernn.settings import Section, setting
from records import Status

from ..jobs import Events, Job, WorkerDied


class Held(NamedTuple):
    """A trial a queue holds: the scheduler's own word for it, its job id, still queued or running."""

    state: str
    job: str
    active: bool


@dataclass(frozen=True, kw_only=True)
class Retries(Section):
    """The option of backends that run a trial again when its worker dies."""

    max_failures: int = setting(2, ge=0, doc="times a trial whose worker died is run again")


class BackendRefused(RuntimeError):
    """The scheduler refused the submission: the message says what it said and what to change."""


class Backend:
    name: ClassVar[str]
    Options: ClassVar[type[Section]]
    slots: int = 1  # trials it runs at once (a search asks for this many points at a time)
    ends_trials: bool = True  # ``run`` returns once its trials have ended (a queue may only submit them)
    asynchronous: bool = False  # submit / wait / outcome / cancel: jobs one by one, as slots free
    batch_grids: bool = False  # a grid still goes to ``run`` whole (a scheduler packs an array better)
    max_failures: int = 0  # times a job whose worker died runs again

    def __init__(self, spec, options: Section):
        self.spec, self.options = spec, options

    @classmethod
    def from_spec(cls, spec, options: dict) -> "Backend":
        """Built from the validated spec and the options given (raises ``ConfigError`` naming bad ones)."""
        return cls(spec, cls.Options(**options))

    def run(self, jobs: list[Job], events: Events) -> bool:
        """A batch backend's way (not ``asynchronous``): run every job; True when they have all
        ended, False when only submitted (queue backends)."""
        raise NotImplementedError

    # an asynchronous backend (``asynchronous``) runs jobs one by one, like concurrent.futures;
    # ``launch.launcher.Launcher.drive`` keeps its slots busy
    def open(self) -> None:
        """Get ready to take jobs (connect to a cluster; ``slots`` is known from here on)."""

    def submit(self, job: Job):
        """Start ``job`` in a free slot (fewer than ``slots`` running); returns its handle."""
        raise NotImplementedError

    def wait(self, handles, timeout: float | None = None) -> set:
        """Block until at least one of ``handles`` has ended, or ``timeout`` seconds; returns those
        that have (FIRST_COMPLETED: maybe none after a timeout)."""
        raise NotImplementedError

    def outcome(self, handle) -> str:
        """The recorded status of an ended job, its slot freed (raises ``WorkerDied``)."""
        raise NotImplementedError

    def cancel(self, handle) -> None:
        """Stop a running job now, its slot freed; the trial records nothing (it resumes from its
        last epoch checkpoint when run again)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (every outcome is recorded already)."""

    def held(self, store_root) -> dict[str, Held]:
        """Trials of this sweep the backend's scheduler knows, by trial id (none: nothing outlives the launcher)."""
        return {}

    def active_trials(self, store_root) -> set[str]:
        """Trials already queued or running (not to be started twice)."""
        return {tid for tid, h in self.held(store_root).items() if h.active}

    def cancel_trials(self, store_root, trial_ids: set[str]) -> str:
        """End these active trials (hung, or the user cancelled the sweep); says what it cancelled ('' for nothing)."""
        return ""


class Running:
    """The jobs in an asynchronous backend's slots: ``start`` one where a slot is free, and
    ``ended`` waits for the first to end (FIRST_COMPLETED) and says how each did. A job whose
    worker died starts again (from its last checkpoint) up to the backend's ``max_failures``
    times, and is then recorded as failed."""

    def __init__(self, backend: Backend, events: Events):
        self.backend, self.events = backend, events
        self.handles: dict = {}  # handle -> job
        self.deaths: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.handles)

    @property
    def free(self) -> bool:
        return len(self.handles) < self.backend.slots

    def start(self, job: Job, label: str | None = None) -> None:
        self.handles[self.backend.submit(job)] = job
        self.events.started(job.trial_id, label)

    def ended(self, timeout: float | None = None) -> list[tuple[Job, str]]:
        """(job, recorded status) of each job that has ended by the time one has (or ``timeout``
        seconds have passed: maybe none)."""
        out = []
        for handle in self.backend.wait(set(self.handles), timeout):
            job = self.handles.pop(handle)
            try:
                out.append((job, self.backend.outcome(handle)))
                continue
            except WorkerDied:
                self.deaths[job.trial_id] = dead = self.deaths.get(job.trial_id, 0) + 1
            if dead <= self.backend.max_failures:
                self.handles[self.backend.submit(job)] = job  # again, from its last checkpoint
                continue
            from ..runner import record_stopped

            record_stopped(job, Status.FAILED, error=(
                f"WorkerDied: its worker process died {dead} times (killed by a signal, e.g. out of memory); "
                "rerun with --retry-failed to resume from its last checkpoint"))
            out.append((job, Status.FAILED))
        return out
