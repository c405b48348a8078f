"""local: a process pool on this machine, capped at its cores.

Workers are spawned (not forked: torch's thread pools do not survive a fork) and
reused across trials; each runs one trial at a time with ``threads`` torch
threads. A worker that dies is replaced and its trial runs again (``run``). On
Linux a worker dies with the launcher (PR_SET_PDEATHSIG), so a killed launcher
leaves no orphan training: the next run resumes those trials from their last
epoch checkpoint.
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

    def __init__(self, workers: int | None = None, cpus_per_trial: int = 1, max_failures: int = 2):
        self.threads = cpus_per_trial
        self.workers = workers or default_workers(cpus_per_trial)
        self.max_failures = max_failures

    @classmethod
    def from_cli(cls, args, spec) -> "LocalBackend":
        return cls(workers=args.workers, cpus_per_trial=spec.resources.cpus, max_failures=args.max_failures)

    def active_trials(self, store_root) -> set[str]:
        return set()  # nothing outlives the launcher

    def cancel_trials(self, store_root, trial_ids: set[str]) -> None:
        pass  # it has no active trials

    def _slot(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                   initargs=(self.threads,))

    def run(self, jobs: list[Job], events: Events) -> bool:
        """One single-process pool per slot: a worker that dies (SIGKILL, out of memory)
        takes only its own trial down. That trial runs again, resuming from its last
        epoch checkpoint, up to ``max_failures`` times; then it is recorded as failed."""
        from ..runner import record_stopped

        if not jobs:
            return True
        slots = [self._slot() for _ in range(min(self.workers, len(jobs)))]
        queue, running, free = list(jobs), {}, list(range(len(slots)))
        deaths: dict[str, int] = {}
        try:
            while queue or running:
                while queue and free:  # submit only what can start now
                    i, job = free.pop(), queue.pop(0)
                    try:
                        fut = slots[i].submit(_run, job, "local")
                    except BrokenProcessPool:  # its idle worker died since its last trial
                        slots[i] = self._slot()
                        fut = slots[i].submit(_run, job, "local")
                    running[fut] = (i, job)
                    events.started(job.trial_id)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i, job = running.pop(fut)
                    free.append(i)
                    try:
                        events.finished(job.trial_id, fut.result())
                        continue
                    except BrokenProcessPool:
                        slots[i].shutdown(wait=False)
                        slots[i] = self._slot()
                    deaths[job.trial_id] = deaths.get(job.trial_id, 0) + 1
                    if deaths[job.trial_id] <= self.max_failures:
                        queue.insert(0, job)  # again, from its last checkpoint
                        continue
                    record_stopped(job, "failed", error=(
                        f"WorkerDied: its worker process died {deaths[job.trial_id]} times (killed by a signal, "
                        "e.g. out of memory); rerun with --retry-failed to resume from its last checkpoint"))
                    events.finished(job.trial_id, "failed")
        finally:  # every outcome is already recorded: idle workers need not be joined
            for slot in slots:
                slot.shutdown(wait=False, cancel_futures=True)
        return True
