"""ray: Ray Tune over the same trial entry point, on a local Ray or an existing cluster.

Every pending trial is one Tune trial (a grid over the jobs) with the spec's
resources (cpus, gpus, fractional gpus allowed); actors are reused across trials;
a trial whose actor dies (its node was lost) is retried up to ``max_failures``
times and resumes from its epoch checkpoint in the store (which must be on a
filesystem every node sees, as must ``$PRERNN_CACHE``: workers read the launcher's
pre-training and feature caches, whose variables are passed to them). With ``asha``, per-epoch metrics feed an ASHA
scheduler and stopped trials are recorded as ``pruned`` with their last epoch.
The Ray dashboard stays off.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from ray import tune

from prernn.config import TrialConfig
from prernn.settings import to_dict

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
        record_stopped(job, "pruned")  # no-op when the trial recorded itself
        _LIVE["events"].finished(job.trial_id, _recorded(job))

    def on_trial_error(self, iteration, trials, trial, **info):
        job = _LIVE["job_for"](trial.config)
        _LIVE["events"].finished(job.trial_id, _recorded(job) or "failed")


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
    execute(job.trial_id, job.config, job.store_root, {**job.meta, "worker": f"ray/{node[:8]}/{os.getpid()}"},
            report=_report if report else None)


def _trainable(config: dict) -> None:
    _run(Job(**config["job"]), config["threads"], config["report"])


def _search_job(spec, store_root: str, meta: dict, params: dict) -> Job:
    from ..search import trial_for

    t = trial_for(spec, params)
    return Job(t.id, t.config.to_dict(), store_root, {**meta, "label": t.label})


def _search_trainable(params: dict, spec_json: dict, store_root: str, meta: dict) -> None:
    from prernn.settings import parse

    from ..spec import SweepSpec

    spec = parse(SweepSpec, spec_json)
    _run(_search_job(spec, store_root, meta, params), spec.resources.cpus, report=True)


class RayBackend:
    name = "ray"

    def __init__(self, resources, address: str | None = None, max_failures: int = 2, asha: bool = False,
                 metric: str = "test_loss", mode: str = "min"):
        self.resources, self.address, self.max_failures = resources, address, max_failures
        self.asha, self.metric, self.mode = asha, metric, mode

    @classmethod
    def from_cli(cls, args, spec) -> "RayBackend":
        from prernn.tasks import TASKS

        task = TASKS[spec.task]
        return cls(spec.resources, args.ray_address, args.max_failures, args.asha, task.primary, task.mode)

    def active_trials(self, store_root) -> set[str]:
        return set()  # the launcher blocks until Tune is done

    def cancel_trials(self, store_root, trial_ids: set[str]) -> None:
        pass  # it has no active trials

    def _init(self) -> None:
        import ray

        local = self.address is None or self.address.split(":")[0] in ("127.0.0.1", "localhost")
        # workers of an existing cluster do not inherit the driver's environment: without these they
        # would pre-train their own copy of a mini backbone (rounding differently on other threads)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR",
                      runtime_env={"env_vars": env} if env else None)
        if local:
            kwargs["_node_ip_address"] = "127.0.0.1"  # keep a one-machine cluster on loopback
        ray.init(address=self.address, **kwargs)

    def run(self, jobs: list[Job], events: Events) -> bool:
        if not jobs:
            return True
        import ray
        from ray.tune.schedulers import ASHAScheduler

        self._init()
        by_id = {j.trial_id: j for j in jobs}
        _LIVE.update(events=events, job_for=lambda config: by_id[config["job"]["trial_id"]])
        try:
            resources = {"cpu": self.resources.cpus, "gpu": self.resources.gpus}
            max_t = max(TrialConfig.from_dict(j.config).total_epochs for j in jobs)
            scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=1) if self.asha else None
            root = Path(jobs[0].store_root).resolve()
            tuner = tune.Tuner(
                tune.with_resources(_trainable, resources),
                param_space={"job": tune.grid_search([asdict(j) for j in jobs]), "threads": self.resources.cpus,
                             "report": self.asha},
                tune_config=tune.TuneConfig(reuse_actors=True, scheduler=scheduler,
                                            metric=self.metric if self.asha else None,
                                            mode=self.mode if self.asha else None),
                run_config=tune.RunConfig(name="tune", storage_path=str(root / "ray"), verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=self.max_failures),
                                          callbacks=[_Progress()]),
            )
            tuner.fit()
        finally:
            _LIVE.clear()
            ray.shutdown()
        return True


    def run_search(self, spec, store_root: Path, url: str | None, meta: dict):
        """An Optuna search through Ray Tune's Optuna integration (same study storage as
        local searches); ASHA stops unpromising trials unless the spec's pruner is none."""
        import ray
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch

        from .. import search

        study = search.load_study(spec, store_root, url)  # create it, then let OptunaSearch drive it
        searcher = OptunaSearch(space={k: search.distribution(p) for k, p in spec.search.space.items()},
                                metric=self.metric, mode=self.mode, sampler=search.sampler(spec),
                                study_name=study.study_name, storage=search.storage(store_root, url))
        scheduler = None
        if spec.search.pruner != "none":
            max_t = search.trial_for(spec, {}).config.total_epochs
            scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=1)
        self._init()
        _LIVE.update(events=_Lines(), job_for=lambda params: _search_job(spec, str(store_root), meta, params))
        try:
            trainable = tune.with_parameters(_search_trainable, spec_json=to_dict(spec),
                                             store_root=str(store_root), meta=meta)
            tune.Tuner(
                tune.with_resources(trainable, {"cpu": self.resources.cpus, "gpu": self.resources.gpus}),
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, metric=self.metric,
                                            mode=self.mode, num_samples=spec.search.n_trials, reuse_actors=True),
                run_config=tune.RunConfig(name="search", storage_path=str(Path(store_root).resolve() / "ray"),
                                          verbose=0, failure_config=tune.FailureConfig(max_failures=self.max_failures),
                                          callbacks=[_Progress()]),
            ).fit()
        finally:
            _LIVE.clear()
            ray.shutdown()
        return search.load_study(spec, store_root, url)


def _recorded(job: Job) -> str | None:
    from ..store import Store

    return Store(job.store_root, job.config["task"]).status(job.trial_id)


class _Lines:
    """Progress for searches, whose trials are not known up front: one line per trial."""

    def started(self, trial_id: str) -> None:
        pass

    def finished(self, trial_id: str, status: str | None) -> None:
        print(f"{status or 'stopped':9} {trial_id}", flush=True)

