"""One trial's row in the store: its outcome, its config (flattened) and its provenance.

``Outcome`` is what running a trial produced (or what is known of a trial that ended
elsewhere); ``trial_row`` adds where and by what it ran and gives the row the store
writes (``store.trials_schema``).
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prernn.config import TrialConfig

from .status import Status
from .store import flatten

ROOT = Path(__file__).resolve().parents[1]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outcome:
    """How a trial ended. Times unknown here (a trial stopped on another node) are None, not 0."""

    status: Status
    error: str | None = None
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    parameters: int | None = None
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    device: str | None = None
    gpu: str | None = None
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime = field(default_factory=_now)

    @classmethod
    def stopped(cls, status: Status, history: list[dict], **kw) -> "Outcome":
        """A trial that ended early (pruned, its worker died): its last finished epoch's metrics."""
        return cls(status, history=history, metrics=TrialConfig.final_metrics(history[-1]) if history else {}, **kw)


@functools.cache
def hardware() -> str:
    """What the trial ran on, e.g. 'x86_64, 2 CPUs, torch 2.14.1, no GPU' (for the report's provenance)."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    gpu = ", ".join(f"{n} x{gpus.count(n)}" for n in dict.fromkeys(gpus)) or "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__.split('+')[0]}, {gpu}"


def git_commit() -> str | None:
    """This checkout's commit, ``-dirty`` when tracked files changed; None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def trial_row(trial_id: str, config: dict, meta: dict, o: Outcome) -> dict:
    """The store's row. meta: sweep, profile, label, git_commit, worker (``launch.backends.Job.meta``)."""
    return {
        "id": trial_id, "sweep": meta["sweep"], "profile": meta["profile"], "label": meta.get("label"),
        "status": str(o.status), "error": o.error, "epochs_done": len(o.history), "parameters": o.parameters,
        "wall_seconds": o.wall_seconds, "cpu_seconds": o.cpu_seconds,
        "host": socket.gethostname(), "pid": os.getpid(), "worker": meta.get("worker"), "hardware": hardware(),
        "device": o.device, "gpu": o.gpu, "git_commit": meta.get("git_commit"),
        "started_at": o.started_at, "finished_at": o.finished_at,
        **flatten(config), **o.metrics,
    }
