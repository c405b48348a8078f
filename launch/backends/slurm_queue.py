"""What a SLURM cluster holds and allows, as the slurm backend asks it: the sweep's submissions and
their job states (squeue for live jobs, sacct for ended ones; ``Watch`` asks less and less often),
and the limits a submission must fit (``MaxArraySize``, ``MaxJobCount``, ``MaxSubmitJobs``,
``slurm.max_queued``), with one line for a submission sbatch refuses.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..spec import SlurmConfig
from .base import BackendRefused

ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


def submissions(store_root: Path) -> list[dict]:
    d = Path(store_root) / "slurm"
    return [json.loads(p.read_text()) for p in sorted(d.glob("[!.]*.json"))] if d.is_dir() else []


def _parse(out: str) -> dict[str, str]:
    states = {}
    for line in out.splitlines():
        job, _, state = line.partition("|")
        states[job.strip()] = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
    return states


def job_states(job_ids: list[str]) -> dict[str, str]:
    """'<array id>_<index>' -> SLURM state. Live jobs come from squeue (slurmctld knows a
    job the moment it is submitted; accounting lags), ended ones from sacct."""
    if not job_ids:
        return {}
    ids = ",".join(job_ids)
    ended = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ids],
                           capture_output=True, text=True, check=True).stdout
    live = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ids], capture_output=True, text=True).stdout
    return {**_expand_pending(_parse(ended)), **_parse(live)}


def trial_states(store_root: Path) -> dict[str, tuple[str, str]]:
    """trial id -> (SLURM state, job id) of its latest submission; a trial a pilot job has
    finished is COMPLETED there, whatever the pilot does next."""
    subs = submissions(store_root)
    pilots = Path(store_root) / "slurm" / "pilots"
    states = job_states([s["job_id"] for s in subs])
    out = {}
    for s in sorted(subs, key=lambda s: s["submitted_at"]):  # later submissions win
        for tid, job in zip(s["trials"], s["jobs"]):
            # a task without a line of its own: sacct lists an array's cancelled unstarted tasks
            # under the bare array id ('170|CANCELLED by 0') as often as under '170_[1-3]'
            out[tid] = (states.get(job) or states.get(job.split("_")[0], "UNKNOWN"), job)
            if "pilot" in s and (pilots / s["pilot"] / f"{tid}.done").exists():
                out[tid] = ("COMPLETED", job)
    return out


def _expand_pending(states: dict[str, str]) -> dict[str, str]:
    """sacct lists a pending array's unstarted tasks as one line '<id>_[2-5%2]'."""
    out = dict(states)
    for job, state in states.items():
        if "_[" in job:
            base, rng = job.split("_[", 1)
            rng = rng.rstrip("]").split("%")[0]
            for part in rng.split(","):
                lo, _, hi = part.partition("-")
                for i in range(int(lo), int(hi or lo) + 1):
                    out.setdefault(f"{base}_{i}", state)
    return out


class Watch:
    """The sweep's SLURM job states (``trial_states``: one squeue and one sacct), asked as submitit's
    watcher asks: 0, 2, 4, 8 ... s after the last change, then every ``MAX_DELAY`` seconds at most."""

    MAX_DELAY = 60.0

    def __init__(self, root: Path):
        self.root = root
        self.changed()

    def changed(self) -> None:
        """Something was just submitted: ask soon again."""
        self._since, self._asked = time.monotonic(), float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        return now - self._asked >= min(self.MAX_DELAY, max(2.0, (now - self._since) / 2))

    def states(self) -> dict[str, tuple[str, str]]:
        self._asked = time.monotonic()
        return trial_states(self.root)


class SubmissionRefused(BackendRefused):
    """sbatch refused an array: what the cluster said, why, and what to change."""


def refusal(said: str, tasks: int, limits: "Limits") -> str:
    """sbatch's complaint as one line with what to change, e.g. 'Invalid job array specification'."""
    reason = next((line.split("failed:", 1)[1].strip() for line in said.splitlines() if "failed:" in line),
                  " ".join(said.split()) or "no reason given")
    hint = "check the spec's `slurm:` section and `resources:`"
    if "array" in reason.lower():
        hint = (f"the array had {tasks} tasks and the cluster's MaxArraySize is {limits.cluster_array_size}: set "
                f"slurm.max_array_size to at most {limits.cluster_array_size} (or leave it unset)")
    elif "partition" in reason.lower():
        hint = "check --partition / slurm.partition (`sinfo` lists the partitions)"
    elif "account" in reason.lower():
        hint = "check --account / slurm.account (`sacctmgr show assoc user=$USER` lists yours)"
    elif "qos" in reason.lower() or "policy" in reason.lower() or "limit" in reason.lower():
        hint = "a queue or QOS limit: lower slurm.max_queued, or check --qos / slurm.qos"
    return f"sbatch refused an array of {tasks} trials: {reason} ({hint}); nothing of it was submitted"


@dataclass
class Limits:
    """How much the cluster takes: tasks per array, and room in the queue now (``room``)."""

    max_array_size: int
    cluster_array_size: int
    max_queued: int | None  # slurm.max_queued
    max_submit: int | None  # the user's association's MaxSubmitJobs
    max_job_count: int | None  # the cluster's MaxJobCount

    def room(self) -> tuple[int, str]:
        """Jobs that may be submitted now, and the limit that decides it."""
        caps = []
        if self.max_queued is not None or self.max_submit is not None:
            mine = _queued(user=True)
            if self.max_queued is not None:
                caps.append((self.max_queued - mine, f"slurm.max_queued {self.max_queued}"))
            if self.max_submit is not None:
                caps.append((self.max_submit - mine, f"your MaxSubmitJobs {self.max_submit}"))
        if self.max_job_count is not None:
            every = _queued(user=False)
            caps.append((self.max_job_count - every, f"the cluster's MaxJobCount {self.max_job_count}"))
        return min(caps, default=(1 << 30, "no queue limit"))


def cluster_config() -> dict[str, str]:
    """``scontrol show config`` as {key: value} ({} where it cannot be read: SLURM's defaults apply)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, sep, v in (line.partition("=") for line in out.splitlines()) if sep}


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def cluster_limits(options: SlurmConfig) -> Limits:
    """The cluster's MaxArraySize and MaxJobCount, the user's MaxSubmitJobs, and the spec's overrides."""
    conf = cluster_config()
    size = _int(conf.get("MaxArraySize")) or 1001
    try:  # no accounting: no association limits
        assoc = subprocess.run(["sacctmgr", "-nP", "show", "assoc", f"user={_user()}", "format=MaxSubmit"],
                               capture_output=True, text=True).stdout.split()
    except OSError:
        assoc = []
    submit = min((v for v in map(_int, assoc) if v is not None), default=None)
    return Limits(options.max_array_size or size, size, options.max_queued, submit, _int(conf.get("MaxJobCount")))


def _user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def _queued(user: bool) -> int:
    """Jobs in the queue (each array task one job, as the limits count them), the user's or everyone's."""
    cmd = ["squeue", "-h", "-r", "-o", "%i"] + (["-u", _user()] if user else [])
    return len(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())
