"""Optuna search (a spec's ``search:``): the search produces trials, any backend runs them.

The launcher asks the study for as many points as the backend runs at once
(``Backend.slots``), turns each into a trial - it overrides the grid's first block,
is expanded and validated like a grid point, and is content-addressed in the store
(a point already completed there is not rerun, its stored value is told to Optuna) -
runs them on the backend like grid trials, tells the study how each ended, and asks
again until the study holds ``n_trials``. A running trial reports its per-epoch
primary metric to the study itself (``reporter``: the study's storage is shared, a
journal file in the sweep directory by default or an RDB URL, ``--optuna-storage``,
on a cluster) and stops when the pruner says so; it is recorded as ``pruned`` with
its last epoch. Ours: points are asked a batch at a time, so a batch waits for its
slowest trial before the next is sampled.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from records import Status

from .expand import Trial, expand
from .jobs import Job, Pruned
from .spec import SpecError, SweepSpec


def suggest(trial: optuna.Trial, name: str, p):
    if p.choices is not None:
        return trial.suggest_categorical(name, p.choices)
    if p.integer:
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    return trial.suggest_float(name, p.low, p.high, log=p.log)


def sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    s = spec.search
    if s.sampler == "grid":  # the spec guarantees choices for every parameter
        return optuna.samplers.GridSampler({k: p.choices for k, p in s.space.items()}, seed=s.seed)
    return {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[s.sampler](seed=s.seed)


_PRUNERS = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "none": optuna.pruners.NopPruner}


def pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    return _PRUNERS[spec.search.pruner]()


def _task(spec: SweepSpec):
    from prernn.tasks import TASKS

    return TASKS[spec.task]


def storage(store_root: Path, url: str | None):
    if url:
        return url
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    store_root.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(store_root / "optuna.journal")))


def trial_for(spec: SweepSpec, params: dict) -> Trial:
    block = {**spec.grid[0], **params}
    return expand(spec.replace(grid=[block]), "search")[0]


def load_study(spec: SweepSpec, store_root: Path, url: str | None) -> optuna.Study:
    direction = "minimize" if _task(spec).mode == "min" else "maximize"
    return optuna.create_study(study_name=f"{spec.name}-{spec.profile}", storage=storage(store_root, url),
                               sampler=sampler(spec), pruner=pruner(spec), direction=direction, load_if_exists=True)


def run(spec: SweepSpec, store, backend, meta: dict, url: str | None, run_jobs) -> optuna.Study:
    """Ask, run on ``backend`` (through ``run_jobs(jobs, backend) -> ended``), tell, until the study
    holds ``n_trials`` trials. Returns the study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(spec, store.root, url)
    metric = _task(spec).primary
    while len(study.trials) < spec.search.n_trials:
        asked = [study.ask() for _ in range(min(backend.slots, spec.search.n_trials - len(study.trials)))]
        trials, jobs = {}, {}
        for point in asked:
            try:
                t = trial_for(spec, {k: suggest(point, k, p) for k, p in spec.search.space.items()})
            except SpecError:  # a sampled combination the model does not allow (e.g. vrnn + sih)
                study.tell(point, state=optuna.trial.TrialState.PRUNED)
                continue
            point.set_user_attr("trial_id", t.id)
            trials[point.number] = (point, t)
            if store.status(t.id) != Status.COMPLETED and t.id not in jobs:  # the same point twice runs once
                report = StudyReporter(str(store.root), url, study.study_name, point._trial_id, spec.search.pruner,
                                       metric, t.config.total_epochs)
                jobs[t.id] = Job(t.id, t.config.to_dict(), str(store.root), {**meta, "label": t.label}, report)
        if jobs and not run_jobs(list(jobs.values()), backend):
            raise RuntimeError(f"the {backend.name} backend only submitted the trials; a search must see them end")
        for point, t in trials.values():
            status = store.status(t.id)
            if status == Status.COMPLETED:
                study.tell(point, float(store.row(t.id, [metric])[metric]), skip_if_finished=True)
            else:
                state = optuna.trial.TrialState.PRUNED if status == Status.PRUNED else optuna.trial.TrialState.FAIL
                study.tell(point, state=state, skip_if_finished=True)
    return load_study(spec, store.root, url)


class StudyReporter:
    """A search trial's ``Job.report``, in whatever process runs it: each epoch's primary metric
    goes to its study, and the trial stops (``Pruned``) when the pruner says so. Plain data
    until its first call (it travels to workers by pickle); the study is loaded there."""

    def __init__(self, store_root: str, url: str | None, study: str, trial: int, pruner: str, metric: str,
                 epochs: int):
        self.store_root, self.url, self.study, self.trial = store_root, url, study, trial
        self.pruner, self.metric, self.epochs = pruner, metric, epochs  # epochs: the longest stream's
        self._trial = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_trial": None}

    def __call__(self, row: dict) -> None:
        if self._trial is None:
            study = optuna.load_study(study_name=self.study, storage=storage(Path(self.store_root), self.url),
                                      pruner=_PRUNERS[self.pruner]())
            self._trial = optuna.trial.Trial(study, self.trial)
        self._trial.report(row[self.metric], row["epoch"])
        # after the last epoch there is nothing left to save: a finished trial is completed
        if row["epoch"] + 1 < self.epochs and self._trial.should_prune():
            raise Pruned


def summary(study: optuna.Study) -> list[str]:
    states = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines = [f"optuna study {study.study_name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        lines.append(f"best: {best.value:.5g} (trial {best.user_attrs.get('trial_id')}) with {best.params}")
    return lines
