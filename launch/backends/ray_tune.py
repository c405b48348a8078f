"""ray: Ray tasks (or, with ``asha``, Ray Tune) over the same trial entry point, on a local Ray or an existing cluster.

Every pending trial is one Ray task with the spec's resources (cpus, gpus,
fractional gpus allowed), submitted the moment a slot frees (``ray_tasks``); Ray
reuses its worker processes across trials. A trial whose worker dies (its node was
lost) runs again up to ``max_failures`` times and resumes from its epoch checkpoint
in the store (which must be on a filesystem every node sees, as must ``$PRERNN_CACHE``: workers read the launcher's
pre-training and feature caches, whose variables are passed to them). With ``asha``
the trials are one Ray Tune run instead (a grid over the jobs, ``tune_glue``): per-epoch
metrics feed an ASHA scheduler and stopped trials are recorded as ``pruned`` with their
last epoch. The Ray dashboard stays off. Ray itself is imported only when trials run,
so building this backend costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prernn.settings import setting

from .base import Backend, Events, Job, Retries


@dataclass(frozen=True, kw_only=True)
class RayOptions(Retries):
    ray_address: str | None = setting(None, doc="join this Ray cluster (default: start a local one)")
    asha: bool = setting(False, doc="ASHA early stopping on the task's metric")


class RayBackend(Backend):
    name = "ray"
    Options = RayOptions

    def __init__(self, spec, options: RayOptions):
        from prernn.tasks import TASKS

        super().__init__(spec, options)
        task = TASKS[spec.task]
        self.resources, self.metric, self.mode = spec.resources, task.primary, task.mode
        self.asynchronous = not options.asha  # ASHA decides over a Tune run; otherwise one task per trial
        self.max_failures = options.max_failures
        # until ``open`` counts the cluster: this machine's share of it
        self.slots = max(2, (os.cpu_count() or 1) // max(1, spec.resources.cpus))
        self._tasks = None  # ray_tasks, once open

    def run(self, jobs: list[Job], events: Events) -> bool:
        """With ``asha``: one Tune run over the jobs, its scheduler stopping the poor ones."""
        if not jobs:
            return True
        from . import tune_glue

        tune_glue.fit(jobs, events, self.resources, self.options, self.metric, self.mode)
        return True

    def open(self) -> None:
        from . import ray_tasks

        if self._tasks is None:
            ray_tasks.init(self.options.ray_address)
            self._tasks = ray_tasks
        self.slots = ray_tasks.slots(self.resources.cpus, self.resources.gpus)

    def submit(self, job: Job):
        return self._tasks.trial_task.options(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus).remote(
            job, self.resources.cpus)

    def wait(self, handles, timeout: float | None = None) -> set:
        return self._tasks.ended(handles, timeout)

    def outcome(self, handle) -> str:
        return self._tasks.outcome(handle)

    def cancel(self, handle) -> None:
        self._tasks.cancel(handle)

    def close(self) -> None:
        if self._tasks is not None:
            import ray

            ray.shutdown()
            self._tasks = None
