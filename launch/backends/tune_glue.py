"""Ray Tune's side of the ray backend with ``asha`` (``ray_tune.RayBackend``): imported only when trials run.

Tune pickles its callbacks, so they find the driver's live progress and jobs in ``_LIVE``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ray import tune

from prernn.config import TrialConfig
from records import Status

from .base import Events, Job
from .ray_tasks import init, run_job

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


def _trainable(config: dict) -> None:
    run_job(Job(**config["job"]), config["threads"], _report if config["report"] else None)


def fit(jobs: list[Job], events: Events, resources, options, metric: str, mode: str) -> None:
    """One Tune run: a grid over the jobs, each with the trial's resources."""
    import ray
    from ray.tune.schedulers import ASHAScheduler

    init(options.ray_address)
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
