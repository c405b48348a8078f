"""What a backend runs and what it says back: the leaf of ``launch`` (it imports nothing of it).

A ``Job`` is plain data - trial id, resolved config, store directory, provenance - plus an
optional ``report``: a picklable callable that a running trial calls with each evaluated
epoch's row (a search's trial tells its Optuna study, ``launch.search.StudyReporter``) and
that stops the trial by raising ``Pruned``. ``Events`` is what a backend tells the
launcher as trials start and end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from records import Status, Store

Report = Callable[[dict], None]


@dataclass(frozen=True)
class Job:
    trial_id: str
    config: dict
    store_root: str
    meta: dict  # sweep, profile, label, git_commit, gpus
    report: Report | None = None  # called with each evaluated epoch's row, wherever the trial runs

    @property
    def store(self) -> Store:
        return Store(self.store_root, self.config["task"])


class Pruned(Exception):
    """Raised by a ``report`` callback to stop a trial early; it is recorded as ``pruned``."""


class WorkerDied(RuntimeError):
    """The process running a job died under it (killed by a signal, out of memory): the job may
    run again, resuming from its last epoch checkpoint."""


class Events(Protocol):
    def started(self, trial_id: str, label: str | None = None) -> None: ...
    def finished(self, trial_id: str, status: Status | str) -> None: ...
