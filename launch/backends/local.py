"""local: a process pool on this machine, capped at its cores.

Workers are spawned (not forked: torch's thread pools do not survive a fork) and
reused across trials, one single-process pool per slot, so that a worker that dies
(SIGKILL, out of memory) takes only its own trial down; each runs one trial at a
time with ``threads`` torch threads. A worker that dies is replaced and its trial
runs again, resuming from its last epoch checkpoint, up to ``max_failures`` times
(``base.Running``); then it is recorded as failed. On
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
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from prernn.settings import setting

from ..jobs import WorkerDied
from .base import Backend, Job, Retries


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
    asynchronous = True

    def __init__(self, spec, options: LocalOptions):
        super().__init__(spec, options)
        self.threads, self.gpus = spec.resources.cpus, spec.resources.gpus
        self.workers = self.slots = options.workers or default_workers(self.threads, self.gpus)
        self.max_failures = options.max_failures
        self._pools: list[ProcessPoolExecutor | None] = [None] * self.slots  # one single-process pool per slot
        self._busy: dict[int, Future] = {}  # slot -> the job running there

    def _slot(self, i: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                   initargs=(self.threads, slot_gpus(i, self.gpus)))

    def submit(self, job: Job) -> Future:
        i = next(i for i in range(self.slots) if i not in self._busy)
        if self._pools[i] is None:
            self._pools[i] = self._slot(i)
        try:
            fut = self._pools[i].submit(_run, job, "local")
        except BrokenProcessPool:  # its idle worker died since its last trial
            self._pools[i] = self._slot(i)
            fut = self._pools[i].submit(_run, job, "local")
        self._busy[i] = fut
        return fut

    def wait(self, handles, timeout: float | None = None) -> set:
        return wait(handles, timeout, return_when=FIRST_COMPLETED).done

    def outcome(self, handle: Future) -> str:
        i = next(i for i, fut in self._busy.items() if fut is handle)
        del self._busy[i]
        try:
            return handle.result()
        except BrokenProcessPool:
            self._pools[i].shutdown(wait=False)
            self._pools[i] = None  # a fresh worker for the slot's next trial
            raise WorkerDied(f"the worker of local slot {i} died") from None

    def cancel(self, handle: Future) -> None:
        """The slot's worker is killed (its trial stops at once; its checkpoints are written
        atomically) and replaced by a fresh one for the slot's next job."""
        i = next(i for i, fut in self._busy.items() if fut is handle)
        del self._busy[i]
        pool, self._pools[i] = self._pools[i], None
        for process in list(pool._processes.values()):  # the executor offers no way to stop a running call
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:  # every outcome is already recorded: idle workers need not be joined
        for pool in self._pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pools = [None] * self.slots
