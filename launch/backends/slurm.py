"""slurm: submitit job arrays; submission returns at once (unless ``wait``).

The trials go out in as many arrays as the cluster's limits need: at most
``MaxArraySize`` tasks each (``scontrol show config``, or ``slurm.max_array_size``),
and no more jobs than the queue has room for (the cluster's ``MaxJobCount``, the
user's association's ``MaxSubmitJobs``, ``slurm.max_queued``); the rest are held and
submitted as earlier jobs drain (``wait``) or by a rerun. A submission sbatch refuses
raises ``SubmissionRefused`` with what it said and what to change. Each array task runs one trial through ``launch.runner.execute`` and records it
in the store (a shared filesystem). A task that is preempted or reaches its time
limit is requeued by submitit (``Checkpointable``); whether requeued that way or
by ``scontrol requeue``, the trial resumes from its own last epoch checkpoint.
Every submission is remembered in ``<store>/slurm/<array job id>.json`` so that
``status`` can merge SLURM's job states with the store and ``cancel`` can cancel them.

The sbatch parameters come from the spec's ``resources`` and the backend's options
(the spec's ``slurm:`` section, overridden on the command line) through the pure
function ``sbatch_parameters``.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..spec import SlurmConfig
from prernn.settings import setting

from .base import Backend, BackendRefused, Events, Held, Job

ROOT = Path(__file__).resolve().parents[2]
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


@dataclass(frozen=True, kw_only=True)
class SlurmOptions(SlurmConfig):
    """The spec's ``slurm:`` section, each key overridable on the command line, and ``--wait``."""

    wait: bool = setting(False, doc="block until every submitted trial has ended")


def sbatch_parameters(resources, options: SlurmOptions, job_name: str) -> dict:
    """Spec resources + CLI options -> submitit SlurmExecutor parameters (pure)."""
    gpus = options.gpus_per_node if options.gpus_per_node is not None else math.ceil(resources.gpus)
    params = {
        "job_name": job_name,
        "time": resources.timeout_min,
        "cpus_per_task": resources.cpus,
        "mem": f"{math.ceil(resources.mem_gb * 1024)}MB",
        "array_parallelism": options.array_parallelism,
        "signal_delay_s": 120,
        # jobs import this project's packages whether or not it is pip-installed
        "setup": [f"export PYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"],
    }
    if gpus:
        params["gpus_per_node"] = gpus
    else:  # train.device: auto means the GPU SLURM gave the trial: none, even on a GPU node
        params["setup"].append("export CUDA_VISIBLE_DEVICES=")
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(options, key):
            params[key] = getattr(options, key)
    return params


def _task_name() -> str:
    return f"slurm/{os.environ.get('SLURM_ARRAY_JOB_ID', '?')}_{os.environ.get('SLURM_ARRAY_TASK_ID', '?')}"


def _checkpointable():
    import submitit

    class TrialTask(submitit.helpers.Checkpointable):
        """Runs one trial; on preemption/timeout submitit requeues it with the same job."""

        def __call__(self, job: Job, threads: int) -> str:
            from ..runner import execute, set_threads

            set_threads(threads)
            return execute(replace(job, meta={**job.meta, "worker": _task_name()}))

    return TrialTask


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
    """trial id -> (SLURM state, job id) of its latest submission."""
    subs = submissions(store_root)
    states = job_states([s["job_id"] for s in subs])
    out = {}
    for s in sorted(subs, key=lambda s: s["submitted_at"]):  # later submissions win
        for tid, job in zip(s["trials"], s["jobs"]):
            # a task without a line of its own: sacct lists an array's cancelled unstarted tasks
            # under the bare array id ('170|CANCELLED by 0') as often as under '170_[1-3]'
            out[tid] = (states.get(job) or states.get(job.split("_")[0], "UNKNOWN"), job)
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


class SlurmBackend(Backend):
    name = "slurm"
    Options = SlurmOptions

    def __init__(self, spec, options: SlurmOptions):
        super().__init__(spec, options)
        self.resources, self.sweep, self.threads = spec.resources, spec.name, spec.resources.cpus
        self.slots, self.ends_trials = options.array_parallelism, options.wait

    @classmethod
    def from_spec(cls, spec, options: dict) -> "SlurmBackend":
        """The spec's ``slurm:`` section, overridden by the options given (--partition, --account, ...)."""
        return cls(spec, SlurmOptions(**{**spec.slurm.to_dict(), **options}))

    def held(self, store_root: Path) -> dict[str, Held]:
        """Every trial of the sweep's submissions, by its latest one."""
        return {tid: Held(state.lower(), job, state in ACTIVE) for tid, (state, job) in trial_states(store_root).items()}

    def cancel_trials(self, store_root: Path, trial_ids: set[str]) -> str:
        held = self.held(store_root)
        jobs = [held[t].job for t in sorted(trial_ids) if t in held and held[t].active]
        if not jobs:
            return ""
        subprocess.run(["scancel", *jobs], check=True)
        arrays = sorted({job.split("_")[0] for job in jobs}, key=int)
        return f"SLURM array job(s) {', '.join(arrays)}"

    def run(self, jobs: list[Job], events: Events) -> bool:
        """Submit the jobs as arrays the cluster accepts, as many as its queue has room for; the
        rest are held: with ``wait`` submitted as earlier jobs drain (and followed until every
        trial has ended), without it left for a rerun (they are not recorded, so a rerun finds
        them pending; submitted ones it finds queued). Returns whether every trial has ended."""
        if not jobs:
            return True
        root = Path(jobs[0].store_root)
        limits = cluster_limits(self.options)
        held, why = self._submit_what_fits(root, list(jobs), limits)
        if not self.options.wait:
            if held:
                print(f"{len(held)} trials held back ({why}): rerun the sweep once earlier jobs have "
                      "left the queue, or run it with --wait to submit them as they drain")
            return False
        if held:
            print(f"{len(held)} trials held back ({why}): submitted as earlier jobs drain")
        self._follow(root, jobs, held, limits, events)
        return True

    def _submit_what_fits(self, root: Path, queue: list[Job], limits: "Limits") -> tuple[list[Job], str]:
        """Submit the head of ``queue`` in arrays of at most ``limits.max_array_size`` tasks, as
        many jobs as the queue has room for now; returns the jobs held back."""
        room, why = limits.room()
        while queue and room > 0:
            chunk = queue[:min(room, limits.max_array_size)]
            self._submit(root, chunk, limits)
            queue, room = queue[len(chunk):], room - len(chunk)
        return queue, why

    def _submit(self, root: Path, jobs: list[Job], limits: "Limits") -> dict:
        """One array; its record is written before anything else can ask about its trials."""
        import submitit

        folder = root / "slurm" / "logs"
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=3)
        executor.update_parameters(**sbatch_parameters(self.resources, self.options, f"prernn-{self.sweep}"))
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # submitit echoes sbatch's stderr before raising
                array = executor.map_array(_checkpointable()(), jobs, [self.threads] * len(jobs))
        except submitit.core.utils.FailedJobError as e:
            raise SubmissionRefused(refusal(str(e) or said.getvalue(), len(jobs), limits)) from None
        job_id = array[0].job_id.split("_")[0]
        # a one-task array is a plain job ("28"), others are "<id>_<index>": keep submitit's own ids
        record = {"job_id": job_id, "trials": [j.trial_id for j in jobs], "jobs": [a.job_id for a in array],
                  "submitted_at": time.time(), "folder": str(folder)}
        tmp = root / "slurm" / f".{job_id}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, root / "slurm" / f"{job_id}.json")
        print(f"submitted {len(jobs)} trials as SLURM array job {job_id} "
              f"(at most {self.options.array_parallelism} at once); logs in {folder}")
        return record

    def _follow(self, root: Path, jobs: list[Job], held: list[Job], limits: "Limits", events: Events) -> None:
        """Until every trial has ended: these jobs (submitting the held ones as room appears, with
        progress events) and the sweep's trials that earlier launches left queued (silently)."""
        store = jobs[0].store
        ours = {j.trial_id for j in jobs}
        earlier = {tid for tid, h in self.held(root).items() if h.active and tid not in ours}
        waiting = ours - {j.trial_id for j in held}
        started: set[str] = set()
        while waiting or held or earlier:
            time.sleep(1)
            if held:
                before = {j.trial_id for j in held}
                held, _ = self._submit_what_fits(root, held, limits)
                waiting |= before - {j.trial_id for j in held}
            recorded = store.statuses()
            latest = trial_states(root)
            earlier = {tid for tid in earlier if latest[tid][0] in ACTIVE}
            for tid in list(waiting):
                state = latest[tid][0] if tid in latest else "PENDING"
                if state == "RUNNING" and tid not in started:
                    started.add(tid)
                    events.started(tid)
                if tid in recorded and state not in ACTIVE:
                    events.finished(tid, recorded[tid])
                    waiting.discard(tid)
                elif state not in ACTIVE and state != "UNKNOWN":  # ended without a row: cancelled, killed
                    events.finished(tid, state.lower())
                    waiting.discard(tid)


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


def cluster_limits(options: SlurmOptions) -> Limits:
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
