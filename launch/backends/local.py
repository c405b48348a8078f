"""local: a process pool on this machine, capped at its cores.

Workers are spawned (not forked: torch's thread pools do not survive a fork) and
reused across trials; each runs one trial at a time with ``threads`` torch
threads. A worker that dies is replaced and its trial runs again (``run``). On
Linux a worker dies with the launcher (PR_SET_PDEATHSIG), so a killed launcher
leaves no orphan training: the next run resumes those trials from their last
epoch checkpoint.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from prernn.settings import setting
from records import Status

from .base import Backend, Events, Job, Retries


def _init_worker(threads: int, gpus: str = "") -> None:
    """Dies with the launcher; sees only its own GPUs (``gpus``: CUDA_VISIBLE_DEVICES; empty:
    none, so ``train.device: auto`` trains on the CPU), uses ``threads`` torch threads."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
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

    return execute(replace(job, meta={**job.meta, "worker": f"{worker}/{os.getpid()}"}))


def default_workers(cpus_per_trial: int, gpus_per_trial: float = 0) -> int:
    """Trials that fit this machine at once: its cores, and its GPUs when trials take some."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = max(1, cores // max(1, cpus_per_trial))
    if gpus_per_trial:
        n = min(n, max(1, int(visible_gpus() / gpus_per_trial)))
    return n


def visible_gpus() -> int:
    """CUDA devices this process may hand out (without initialising CUDA in the launcher)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    import torch

    return torch.cuda.device_count()


def slot_gpus(slot: int, gpus_per_trial: float) -> str:
    """CUDA_VISIBLE_DEVICES of a worker slot: ``gpus_per_trial`` whole GPUs each, or a
    fraction of one (slots 0 and 1 share GPU 0 at 0.5)."""
    if not gpus_per_trial:
        return ""
    if gpus_per_trial >= 1:
        n = math.ceil(gpus_per_trial)
        ids = range(slot * n, slot * n + n)
    else:
        ids = [int(slot * gpus_per_trial)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [d.strip() for d in visible.split(",") if d.strip()] if visible is not None else None
    return ",".join(names[i] if names is not None else str(i) for i in ids)


@dataclass(frozen=True, kw_only=True)
class LocalOptions(Retries):
    workers: int | None = setting(None, ge=1, doc="parallel trials (default: cores / resources.cpus)")


class LocalBackend(Backend):
    name = "local"
    Options = LocalOptions

    def __init__(self, spec, options: LocalOptions):
        super().__init__(spec, options)
        self.threads, self.gpus = spec.resources.cpus, spec.resources.gpus
        self.workers = self.slots = options.workers or default_workers(self.threads, self.gpus)
        self.max_failures = options.max_failures

    def _slot(self, i: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                   initargs=(self.threads, slot_gpus(i, self.gpus)))

    def run(self, jobs: list[Job], events: Events) -> bool:
        """One single-process pool per slot: a worker that dies (SIGKILL, out of memory)
        takes only its own trial down. That trial runs again, resuming from its last
        epoch checkpoint, up to ``max_failures`` times; then it is recorded as failed."""
        from ..runner import record_stopped

        if not jobs:
            return True
        slots = [self._slot(i) for i in range(min(self.workers, len(jobs)))]
        queue, running, free = list(jobs), {}, list(range(len(slots)))
        deaths: dict[str, int] = {}
        try:
            while queue or running:
                while queue and free:  # submit only what can start now
                    i, job = free.pop(), queue.pop(0)
                    try:
                        fut = slots[i].submit(_run, job, "local")
                    except BrokenProcessPool:  # its idle worker died since its last trial
                        slots[i] = self._slot(i)
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
                        slots[i] = self._slot(i)
                    deaths[job.trial_id] = deaths.get(job.trial_id, 0) + 1
                    if deaths[job.trial_id] <= self.max_failures:
                        queue.insert(0, job)  # again, from its last checkpoint
                        continue
                    record_stopped(job, Status.FAILED, error=(
                        f"WorkerDied: its worker process died {deaths[job.trial_id]} times (killed by a signal, "
                        "e.g. out of memory); rerun with --retry-failed to resume from its last checkpoint"))
                    events.finished(job.trial_id, Status.FAILED)
        finally:  # every outcome is already recorded: idle workers need not be joined
            for slot in slots:
                slot.shutdown(wait=False, cancel_futures=True)
        return True
