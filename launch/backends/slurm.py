"""slurm: submitit job arrays for a grid, one job per point for a search; submission returns at once (unless ``wait``).

The trials go out in as many arrays as the cluster's limits need: at most
``MaxArraySize`` tasks each (``scontrol show config``, or ``slurm.max_array_size``),
and no more jobs than the queue has room for (the cluster's ``MaxJobCount``, the
user's association's ``MaxSubmitJobs``, ``slurm.max_queued``: ``slurm_queue``); the
rest are held and submitted as earlier jobs drain (``wait``) or by a rerun. At most
``slurm.max_running`` of them run at once (the array's ``%N``). A submission sbatch
refuses raises ``SubmissionRefused`` with what it said and what to change. With
``wait`` a search's points go out as single jobs the moment a slot frees (``submit``,
``wait``, ``cancel``: submitit's jobs and their rate-limited watcher). Each job runs
one trial through ``launch.runner.execute`` and records it in the store (a shared
filesystem). A task that is preempted or reaches its time limit is requeued by
submitit (``Checkpointable``); whether requeued that way or by ``scontrol requeue``,
the trial resumes from its own last epoch checkpoint. Every submission is remembered
in ``<store>/slurm/<job id>.json`` so that ``status`` can merge SLURM's job states
with the store and ``cancel`` can cancel them.

The sbatch parameters come from the spec's ``resources`` and the backend's options
(the spec's ``slurm:`` section, overridden on the command line) through the pure
function ``sbatch_parameters``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..spec import SlurmConfig
from prernn.settings import setting

from ..jobs import WorkerDied
from .base import Backend, Events, Held, Job
from .slurm_queue import ACTIVE, Limits, SubmissionRefused, Watch, cluster_limits, refusal, trial_states

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 1.0  # how often a waiting grid looks for its trials' rows (a file stat each)
JOB_POLL_SECONDS = 0.25  # how often a search looks for its running jobs' results (at most max_running of them)


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
        "array_parallelism": options.max_running,  # the array's %N
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


class SlurmBackend(Backend):
    name = "slurm"
    Options = SlurmOptions
    batch_grids = True

    def __init__(self, spec, options: SlurmOptions):
        super().__init__(spec, options)
        self.resources, self.sweep, self.threads = spec.resources, spec.name, spec.resources.cpus
        self.slots, self.ends_trials = options.max_running, options.wait
        # with --wait a search's points go out one job each as slots free; a grid still goes out as arrays
        self.asynchronous = options.wait
        self._jobs: dict = {}  # submitit job -> our Job, while it runs

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
                log.info(f"{len(held)} trials held back ({why}): rerun the sweep once earlier jobs have "
                      "left the queue, or run it with --wait to submit them as they drain")
            return False
        if held:
            log.info(f"{len(held)} trials held back ({why}): submitted as earlier jobs drain")
        self._follow(root, jobs, held, limits, events)
        return True

    # one job per trial, as slots free (a search's points): submitit's jobs and its rate-limited watcher

    def submit(self, job: Job):
        root = Path(job.store_root)
        executor = self._executor(root)
        try:
            handle = executor.submit(_checkpointable()(), job, self.threads)
        except _failed() as e:
            raise SubmissionRefused(refusal(str(e), 1, cluster_limits(self.options))) from None
        self._remember(root, [job], [handle.job_id])
        self._jobs[handle] = job
        return handle

    def wait(self, handles, timeout: float | None = None) -> set:
        """A job is done once its result file is there (submitit reads it at once) or sacct says it
        ended (submitit asks at 0, 2, 4, 8 ... s after a submission, then at least every 10 min)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = {h for h in handles if h.done()}
            if done or (deadline is not None and time.monotonic() >= deadline):
                return done
            time.sleep(JOB_POLL_SECONDS)

    def outcome(self, handle) -> str:
        job = self._jobs.pop(handle)
        status = job.store.status(job.trial_id)
        if status is not None:
            return status
        state = handle.watcher.get_state(handle.job_id, mode="force")
        if state.upper().startswith("CANCELLED"):  # scancel: not recorded, a rerun resumes it
            return "cancelled"
        raise WorkerDied(f"SLURM job {handle.job_id} ended {state} without recording its trial")

    def cancel(self, handle) -> None:
        self._jobs.pop(handle, None)
        handle.cancel(check=False)

    def _executor(self, root: Path):
        import submitit

        executor = submitit.SlurmExecutor(folder=root / "slurm" / "logs", max_num_timeout=3)
        executor.update_parameters(**sbatch_parameters(self.resources, self.options, f"prernn-{self.sweep}"))
        return executor

    def _remember(self, root: Path, jobs: list[Job], job_ids: list[str]) -> dict:
        """A submission's record (``submissions``), written before anything else can ask about its trials."""
        job_id = job_ids[0].split("_")[0]
        # a one-task array is a plain job ("28"), others are "<id>_<index>": keep submitit's own ids
        record = {"job_id": job_id, "trials": [j.trial_id for j in jobs], "jobs": job_ids,
                  "submitted_at": time.time(), "folder": str(root / "slurm" / "logs")}
        tmp = root / "slurm" / f".{job_id}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, root / "slurm" / f"{job_id}.json")
        return record

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
        executor = self._executor(root)
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # submitit echoes sbatch's stderr before raising
                array = executor.map_array(_checkpointable()(), jobs, [self.threads] * len(jobs))
        except _failed() as e:
            raise SubmissionRefused(refusal(str(e) or said.getvalue(), len(jobs), limits)) from None
        record = self._remember(root, jobs, [a.job_id for a in array])
        log.info(f"submitted {len(jobs)} trials as SLURM array job {record['job_id']} "
                 f"(at most {self.options.max_running} at once); logs in {record['folder']}")
        return record

    def _follow(self, root: Path, jobs: list[Job], held: list[Job], limits: "Limits", events: Events) -> None:
        """Until every trial has ended: these jobs (submitting the held ones as room appears, with
        progress events) and the sweep's trials that earlier launches left queued (silently).
        A trial that recorded itself has ended (its row's file is looked for every second); the
        scheduler is asked (``Watch``) for the rest as submitit does, less and less often."""
        store = jobs[0].store
        ours = {j.trial_id for j in jobs}
        watch = Watch(root)
        earlier = {tid for tid, (state, _) in watch.states().items() if state in ACTIVE and tid not in ours}
        waiting = ours - {j.trial_id for j in held}
        started: set[str] = set()
        while waiting or held or earlier:
            time.sleep(POLL_SECONDS)
            for tid in [t for t in waiting if store.recorded(t)]:
                events.finished(tid, store.status(tid))
                waiting.discard(tid)
            if not watch.due():
                continue
            latest = watch.states()
            if held:
                before = {j.trial_id for j in held}
                held, _ = self._submit_what_fits(root, held, limits)
                waiting |= before - {j.trial_id for j in held}
                watch.changed()
            earlier = {tid for tid in earlier if latest[tid][0] in ACTIVE}
            for tid in list(waiting):
                state = latest[tid][0] if tid in latest else "PENDING"
                if state == "RUNNING" and tid not in started:
                    started.add(tid)
                    events.started(tid)
                if state not in ACTIVE and state != "UNKNOWN" and not store.recorded(tid):
                    events.finished(tid, state.lower())  # ended without a row: cancelled, killed
                    waiting.discard(tid)


def _failed():
    import submitit

    return submitit.core.utils.FailedJobError
