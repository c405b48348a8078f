"""ray: Ray Tune over the same trial entry point, on a local Ray or an existing cluster.

Every pending trial is one Tune trial (a grid over the jobs) with the spec's
resources (cpus, gpus, fractional gpus allowed); actors are reused across trials;
a trial whose actor dies (its node was lost) is retried up to ``max_failures``
times and resumes from its epoch checkpoint in the store (which must be on a
filesystem every node sees, as must ``$PRERNN_CACHE``: workers read the launcher's
pre-training and feature caches, whose variables are passed to them). With ``asha``,
per-epoch metrics feed an ASHA scheduler and stopped trials are recorded as ``pruned``
with their last epoch. The Ray dashboard stays off. Ray itself is imported only when
trials run (``tune_glue.py``), so building this backend costs nothing.
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
        # a search asks for this many points at a time: this machine's share of the cluster
        self.slots = max(2, (os.cpu_count() or 1) // max(1, spec.resources.cpus))

    def run(self, jobs: list[Job], events: Events) -> bool:
        if not jobs:
            return True
        from . import tune_glue

        tune_glue.fit(jobs, events, self.resources, self.options, self.metric, self.mode)
        return True
