"""A trial's status: the one vocabulary every layer speaks.

Recorded in the store (``status`` column):
  completed   ran every epoch
  failed      raised (``error`` says why), or its worker died too often
  diverged    its loss or a metric became NaN/inf
  pruned      stopped early by a search's pruner or a scheduler, with its last epoch
Derived, never written:
  missing     expected by the spec, no row in the store (analysis)
  running     started, unrecorded, its heartbeat fresh
  lost        started, unrecorded, its heartbeat stale: its worker died without a trace
  cancelled   started, unrecorded, stopped on request (``prernn-sweep cancel``): a rerun resumes it

A ``Status`` is a ``str``: it compares equal to the text in the store and in data frames.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    MISSING = "missing"
    RUNNING = "running"
    LOST = "lost"
    CANCELLED = "cancelled"


#: ended without a usable result: counted as failures, rerun with --retry-failed
BAD = frozenset({Status.FAILED, Status.DIVERGED})
#: ended as intended (a pruned trial was stopped on purpose)
GOOD = frozenset({Status.COMPLETED, Status.PRUNED})
