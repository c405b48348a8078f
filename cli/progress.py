"""Live progress of a sweep: done / running / failed / remaining, with an ETA.

On a terminal: a rich progress bar redrawn in place. Elsewhere (CI, log files,
SLURM output): one line per finished trial.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from records import BAD, Status


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class SweepProgress:
    """Implements the backends' Events protocol (started / finished)."""

    def __init__(self, labels: dict[str, str], console: Console, total: int | None = None):
        self.labels, self.console = dict(labels), console
        self.total = len(labels) if total is None else total  # a search's trials are labelled as they start
        self.running: set[str] = set()
        self.counts = {Status.COMPLETED: 0, Status.FAILED: 0, Status.DIVERGED: 0}
        self.start = time.monotonic()
        self._bar = None

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> str:
        if not self.done:
            return "?"
        per_trial = (time.monotonic() - self.start) / self.done
        return _duration(per_trial * (self.total - self.done))

    def info(self) -> str:
        bad = sum(self.counts[s] for s in BAD)
        remaining = self.total - self.done - len(self.running)
        return (f"{self.counts[Status.COMPLETED]} done · {len(self.running)} running · {bad} failed · "
                f"{remaining} remaining · ETA {self.eta()}")

    def __enter__(self):
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, info=self.info())
        return self

    def __exit__(self, *exc):
        if self._bar:
            self._bar.__exit__(*exc)

    def _refresh(self) -> None:
        if self._bar:
            self._bar.update(self._task, completed=self.done, info=self.info())

    def started(self, trial_id: str, label: str | None = None) -> None:
        if label is not None:
            self.labels[trial_id] = label
        self.running.add(trial_id)
        self._refresh()

    def finished(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.counts[status] = self.counts.get(status, 0) + 1
        if self._bar:
            self._refresh()
        else:
            self.console.print(f"[{self.done}/{self.total}] {status:9} {trial_id} {self.labels.get(trial_id, '')}  ({self.info()})",
                               highlight=False)
