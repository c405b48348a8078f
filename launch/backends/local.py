"""local: a process pool on this machine, capped at its cores.

Workers are spawned (not forked: torch's thread pools do not survive a fork) and
reused across trials; each runs one trial at a time with ``threads`` torch
threads. On Linux a worker dies with the launcher (PR_SET_PDEATHSIG), so a killed
launcher leaves no orphan training: the next run resumes those trials from their
last epoch checkpoint.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .base import Events, Job


def _init_worker(threads: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the launcher already died before prctl
            os._exit(1)
    from ..runner import set_threads

    set_threads(threads)


def _run(job: Job, worker: str) -> str:
    from ..runner import execute

    return execute(job.trial_id, job.config, job.store_root, {**job.meta, "worker": f"{worker}/{os.getpid()}"})


def default_workers(cpus_per_trial: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, cpus_per_trial))


class LocalBackend:
    name = "local"

    def __init__(self, workers: int | None = None, cpus_per_trial: int = 1):
        self.threads = cpus_per_trial
        self.workers = workers or default_workers(cpus_per_trial)

    @classmethod
    def from_cli(cls, args, spec) -> "LocalBackend":
        return cls(workers=args.workers, cpus_per_trial=spec.resources.cpus)

    def active_trials(self, store_root) -> set[str]:
        return set()  # nothing outlives the launcher

    def run(self, jobs: list[Job], events: Events) -> bool:
        if not jobs:
            return True
        ctx = mp.get_context("spawn")
        workers = min(self.workers, len(jobs))
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(self.threads,))
        try:
            queue = list(jobs)
            running = {}
            while queue or running:
                while queue and len(running) < workers:  # submit only what can start now
                    job = queue.pop(0)
                    running[pool.submit(_run, job, "local")] = job
                    events.started(job.trial_id)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        status = fut.result()
                    except BrokenProcessPool:
                        raise RuntimeError(
                            f"a worker process died while running trial {job.trial_id} "
                            "(killed, or out of memory); rerun the sweep to resume it") from None
                    events.finished(job.trial_id, status)
        finally:  # every outcome is already recorded: idle workers need not be joined
            pool.shutdown(wait=False, cancel_futures=True)
        return True
