"""The one interface every backend implements, in the spirit of Hydra's launchers and
submitit's executors.

A backend is built from the validated spec and its own typed ``Options`` (a settings
``Section``: the command line offers each field as a flag, ``--max-failures`` for
``max_failures``, and refuses a flag the chosen backend does not take). It receives
plain data - ``Job``s (trial id, resolved config, store directory, provenance) - and
runs each through ``launch.runner.execute`` in some process, reporting progress
through the callbacks. It need not return results: ``execute`` records every outcome
in the store, which is the source of truth. Backends whose jobs outlive the launcher
(queues) also say which trials they hold and cancel them; the others hold none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from prernn.settings import Section, setting

from ..jobs import Events, Job


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

    def __init__(self, spec, options: Section):
        self.spec, self.options = spec, options

    @classmethod
    def from_spec(cls, spec, options: dict) -> "Backend":
        """Built from the validated spec and the options given (raises ``ConfigError`` naming bad ones)."""
        return cls(spec, cls.Options(**options))

    def run(self, jobs: list[Job], events: Events) -> bool:
        """Run every job; True when they have all ended, False when only submitted (queue backends)."""
        raise NotImplementedError

    def held(self, store_root) -> dict[str, Held]:
        """Trials of this sweep the backend's scheduler knows, by trial id (none: nothing outlives the launcher)."""
        return {}

    def active_trials(self, store_root) -> set[str]:
        """Trials already queued or running (not to be started twice)."""
        return {tid for tid, h in self.held(store_root).items() if h.active}

    def cancel_trials(self, store_root, trial_ids: set[str]) -> str:
        """End these active trials (hung, or the user cancelled the sweep); says what it cancelled ('' for nothing)."""
        return ""
