"""Ray Tune's side of the ray backend (``ray_tune.RayBackend``): imported only when trials run.

Tune pickles its callbacks, so they find the driver's live progress and jobs in ``_LIVE``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from ray import tune

from prernn.config import TrialConfig
from records import Status

from .base import Events, Job

# where trials find the pre-training and feature caches and weight files, as the launcher sees them
FORWARDED_ENV = ("PRERNN_CACHE", "PRERNN_WEIGHTS", "PRERNN_KERNELS")
# the driver's live progress and jobs; Tune pickles its callbacks, so they look these up
_LIVE: dict = {}


class _Progress(tune.Callback):
    """Tune's trial events -> the sweep's progress; stopped trials recorded as pruned."""

    def on_trial_start(self, iteration, trials, trial, **info):
        _LIVE["events"].started(_LIVE["job_for"](trial.config).trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        from ..runner import record_stopped

        job = _LIVE["job_for"](trial.config)
        record_stopped(job, Status.PRUNED)  # no-op when the trial recorded itself
        _LIVE["events"].finished(job.trial_id, _recorded(job))

    def on_trial_error(self, iteration, trials, trial, **info):
        job = _LIVE["job_for"](trial.config)
        _LIVE["events"].finished(job.trial_id, _recorded(job) or Status.FAILED)


def _report(row: dict) -> None:
    tune.report({k: v for k, v in row.items() if isinstance(v, (int, float))})


def _run(job: Job, threads: int, report: bool) -> None:
    """Run one trial in this actor; per-epoch results go to Tune only when a scheduler
    needs them (each ``tune.report`` is a round trip to the driver)."""
    import ray

    from ..runner import execute, set_threads

    if not ray.get_runtime_context().get_accelerator_ids().get("GPU"):  # auto: the trial was given no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    set_threads(threads)
    node = ray.get_runtime_context().get_node_id()
    execute(replace(job, meta={**job.meta, "worker": f"ray/{node[:8]}/{os.getpid()}"}), report=_report if report else None)


def _trainable(config: dict) -> None:
    _run(Job(**config["job"]), config["threads"], config["report"])


def _init(address: str | None) -> None:
    import ray

    local = address is None or address.split(":")[0] in ("127.0.0.1", "localhost")
    # workers of an existing cluster do not inherit the driver's environment: without these they
    # would pre-train their own copy of a mini backbone (rounding differently on other threads)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR",
                  runtime_env={"env_vars": env} if env else None)
    if local:
        kwargs["_node_ip_address"] = "127.0.0.1"  # keep a one-machine cluster on loopback
    ray.init(address=address, **kwargs)


def fit(jobs: list[Job], events: Events, resources, options, metric: str, mode: str) -> None:
    """One Tune run: a grid over the jobs, each with the trial's resources."""
    import ray
    from ray.tune.schedulers import ASHAScheduler

    _init(options.ray_address)
    by_id = {j.trial_id: j for j in jobs}
    _LIVE.update(events=events, job_for=lambda config: by_id[config["job"]["trial_id"]])
    try:
        max_t = max(TrialConfig.from_dict(j.config).total_epochs for j in jobs)
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=1) if options.asha else None
        root = Path(jobs[0].store_root).resolve()
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": resources.cpus, "gpu": resources.gpus}),
            param_space={"job": tune.grid_search([asdict(j) for j in jobs]), "threads": resources.cpus,
                         "report": options.asha},
            tune_config=tune.TuneConfig(reuse_actors=True, scheduler=scheduler,
                                        metric=metric if options.asha else None,
                                        mode=mode if options.asha else None),
            run_config=tune.RunConfig(name="tune", storage_path=str(root / "ray"), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=options.max_failures),
                                      callbacks=[_Progress()]),
        )
        tuner.fit()
    finally:
        _LIVE.clear()
        ray.shutdown()


def _recorded(job: Job) -> str | None:
    return job.store.status(job.trial_id)
