"""Ray's side of the ray backend (``ray_tune.RayBackend``): imported only when trials run.

A trial is one Ray task (``trial_task``) with the spec's resources; Ray reuses its worker
processes, so torch is imported once per worker, not once per trial.
"""

from __future__ import annotations

import os
from dataclasses import replace

import ray

from ..jobs import Job

# where trials find the pre-training and feature caches and weight files, as the launcher sees them
FORWARDED_ENV = ("PRERNN_CACHE", "PRERNN_WEIGHTS", "PRERNN_KERNELS")


def init(address: str | None) -> None:
    local = address is None or address.split(":")[0] in ("127.0.0.1", "localhost")
    # workers of an existing cluster do not inherit the driver's environment: without these they
    # would pre-train their own copy of a mini backbone (rounding differently on other threads)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR",
                  runtime_env={"env_vars": env} if env else None)
    if local:
        kwargs["_node_ip_address"] = "127.0.0.1"  # keep a one-machine cluster on loopback
    ray.init(address=address, **kwargs)


def run_job(job: Job, threads: int, report=None) -> str:
    """Run one trial in this Ray worker; returns its recorded status."""
    from ..runner import execute, set_threads

    if not ray.get_runtime_context().get_accelerator_ids().get("GPU"):  # auto: the trial was given no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    set_threads(threads)
    node = ray.get_runtime_context().get_node_id()
    return execute(replace(job, meta={**job.meta, "worker": f"ray/{node[:8]}/{os.getpid()}"}), report=report)


trial_task = ray.remote(max_retries=0)(run_job)  # a worker that dies is the launcher's to retry (base.Running)


def slots(cpus: int, gpus: float) -> int:
    """Trials the cluster runs at once with these resources each."""
    have = ray.cluster_resources()
    n = int(have.get("CPU", 1) // max(1, cpus))
    if gpus:
        n = min(n, int(have.get("GPU", 0) // gpus))
    return max(1, n)


def ended(refs, timeout: float | None) -> set:
    done, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
    return set(done)


def outcome(ref) -> str:
    """The status the trial recorded; ``WorkerDied`` when its worker or node died under it."""
    from ..jobs import WorkerDied

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError:
        raise  # our own code raised outside the trial: a bug to see, not a death to retry
    except ray.exceptions.RayError as e:
        raise WorkerDied(f"its Ray worker died ({type(e).__name__})") from None


def cancel(ref) -> None:
    ray.cancel(ref, force=True)
