"""The one interface every backend implements.

A backend receives plain data - ``Job``s (trial id, resolved config, store
directory, provenance) - and runs each through ``launch.runner.execute`` in some
process, reporting progress through the callbacks. It need not return results:
``execute`` records every outcome in the store, which is the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Job:
    trial_id: str
    config: dict
    store_root: str
    meta: dict  # sweep, profile, label, git_commit


class Events(Protocol):
    def started(self, trial_id: str) -> None: ...
    def finished(self, trial_id: str, status: str) -> None: ...


class Backend(Protocol):
    name: str

    @classmethod
    def from_cli(cls, args, spec) -> "Backend":
        """Build from the parsed command line and the validated spec."""

    def active_trials(self, store_root) -> set[str]:
        """Trials already queued or running elsewhere (not to be started twice)."""

    def cancel_trials(self, store_root, trial_ids: set[str]) -> None:
        """End these active trials (hung: no heartbeat) so that they can run again."""

    def run(self, jobs: list[Job], events: Events) -> bool:
        """Run every job; True when they have all ended, False when only submitted (queue backends)."""

