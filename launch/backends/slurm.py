"""slurm: submitit job arrays for a grid, one job per point for a search; submission returns at once (unless ``wait``).

The trials go out in as many arrays as the cluster's limits need: at most
``MaxArraySize`` tasks each (``scontrol show config``, or ``slurm.max_array_size``),
and no more jobs than the queue has room for (the cluster's ``MaxJobCount``, the
user's association's ``MaxSubmitJobs``, ``slurm.max_queued``: ``slurm_queue``); the
rest are held and submitted as earlier jobs drain (``wait``) or by a rerun. At most
``slurm.max_running`` of them run at once (the array's ``%N``). A submission sbatch
refuses raises ``SubmissionRefused`` with what it said and what to change. With
``wait`` a search's points go, the moment a slot frees (``submit``, ``wait``, ``cancel``),
to at most ``slurm.max_running`` pilot jobs that run one trial after another
(``slurm_pilots``: a fresh job per point left its slot idle for its start-up). Every
trial runs through ``launch.runner.execute`` and records itself in the store (a shared
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
from .slurm_pilots import Assignment, Pilots, pilot_task
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
        self._pilots: Pilots | None = None  # a search's pilot jobs (``submit``)

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
        return f"SLURM job(s) {', '.join(arrays)}"

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

    # a search's points, one at a time as slots free: each handed to an idle pilot job (``slurm_pilots``)

    def submit(self, job: Job) -> Assignment:
        if self._pilots is None:
            root = Path(job.store_root)
            self._pilots = Pilots(root, lambda folder: self._start_pilot(root, folder),
                                  lambda j, job_id, pilot: self._remember(root, [j], [job_id], pilot=pilot),
                                  self.resources.timeout_min * 60)
        return self._pilots.submit(job)

    def wait(self, handles, timeout: float | None = None) -> set:
        """A job has ended once its pilot says so, or its pilot's SLURM job has ended (submitit's
        watcher: its result file, or sacct at 0, 2, 4, 8 ... s after a submission)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = {h for h in handles if self._pilots.done(h)}
            if done or (deadline is not None and time.monotonic() >= deadline):
                return done
            time.sleep(JOB_POLL_SECONDS)

    def outcome(self, handle: Assignment) -> str:
        said = self._pilots.said(handle)
        status = handle.job.store.status(handle.job.trial_id)
        if status is not None:
            return status
        slurm_job = handle.pilot.job
        if said is not None:
            raise WorkerDied(f"SLURM job {slurm_job.job_id} failed running the trial: {said['error']}")
        state = slurm_job.watcher.get_state(slurm_job.job_id, mode="force")
        if state.upper().startswith("CANCELLED"):  # scancel: not recorded, a rerun resumes it
            return "cancelled"
        raise WorkerDied(f"SLURM job {slurm_job.job_id} ended {state} without recording its trial")

    def cancel(self, handle: Assignment) -> None:
        self._pilots.cancel(handle)

    def close(self) -> None:
        if self._pilots is not None:
            self._pilots.close()
            self._pilots = None

    def _start_pilot(self, root: Path, folder: Path):
        try:
            pilot = self._executor(root).submit(pilot_task()(), str(folder), self.threads)
        except _failed() as e:
            raise SubmissionRefused(refusal(str(e), 1, cluster_limits(self.options))) from None
        log.info(f"started SLURM job {pilot.job_id} to run trials one after another (a pilot)")
        return pilot

    def _executor(self, root: Path):
        import submitit

        executor = submitit.SlurmExecutor(folder=root / "slurm" / "logs", max_num_timeout=3)
        executor.update_parameters(**sbatch_parameters(self.resources, self.options, f"prernn-{self.sweep}"))
        return executor

    def _remember(self, root: Path, jobs: list[Job], job_ids: list[str], pilot: str | None = None) -> dict:
        """A submission's record (``submissions``), written before anything else can ask about its
        trials; a pilot's one per trial handed to it."""
        job_id = job_ids[0].split("_")[0]
        # a one-task array is a plain job ("28"), others are "<id>_<index>": keep submitit's own ids
        record = {"job_id": job_id, "trials": [j.trial_id for j in jobs], "jobs": job_ids,
                  "submitted_at": time.time(), "folder": str(root / "slurm" / "logs")}
        name = job_id
        if pilot is not None:
            record["pilot"], name = pilot, f"{job_id}-{jobs[0].trial_id}"
        tmp = root / "slurm" / f".{name}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, root / "slurm" / f"{name}.json")
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
