"""slurm: one submitit job array per submission; submission returns at once.

Each array task runs one trial through ``launch.runner.execute`` and records it
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

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..spec import SlurmConfig
from prernn.settings import setting

from .base import Backend, Events, Held, Job

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
            out[tid] = (states.get(job, "UNKNOWN"), job)
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
        if not submissions(store_root):
            return {}
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
        """Submit one array; with ``wait``, follow it until every trial is recorded. Returns finished."""
        import submitit

        if not jobs:
            return True
        root = Path(jobs[0].store_root)
        folder = root / "slurm" / "logs"
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=3)
        executor.update_parameters(**sbatch_parameters(self.resources, self.options, f"prernn-{self.sweep}"))
        task = _checkpointable()()
        array = executor.map_array(task, jobs, [self.threads] * len(jobs))
        job_id = array[0].job_id.split("_")[0]
        # a one-task array is a plain job ("28"), others are "<id>_<index>": keep submitit's own ids
        record = {"job_id": job_id, "trials": [j.trial_id for j in jobs], "jobs": [a.job_id for a in array],
                  "submitted_at": time.time(), "folder": str(folder)}
        tmp = root / "slurm" / f".{job_id}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, root / "slurm" / f"{job_id}.json")
        print(f"submitted {len(jobs)} trials as SLURM array job {job_id} "
              f"(at most {self.options.array_parallelism} at once); logs in {folder}")
        if not self.options.wait:
            return False
        self._follow(root, jobs, record, events)
        return True

    def _follow(self, root: Path, jobs: list[Job], record: dict, events: Events) -> None:
        store = jobs[0].store
        pending = dict(zip(record["trials"], record["jobs"]))
        started: set[str] = set()
        while pending:
            time.sleep(1)
            recorded = store.statuses()
            states = job_states([record["job_id"]])
            for tid, job in list(pending.items()):
                state = states.get(job, "PENDING")
                if state == "RUNNING" and tid not in started:
                    started.add(tid)
                    events.started(tid)
                if tid in recorded and state not in ACTIVE:
                    events.finished(tid, recorded[tid])
                    del pending[tid]
                elif state not in ACTIVE and state != "UNKNOWN":  # ended without a row: cancelled, killed
                    events.finished(tid, state.lower())
                    del pending[tid]
