"""Optuna search (a spec's ``search:``): the search produces trials, any backend runs them.

The launcher asks the study for points, as many as the backend runs at once
(``Backend.slots``), turns each into a trial - it overrides the grid's first block,
is expanded and validated like a grid point, and is content-addressed in the store
(a point already completed there is not rerun, its stored value is told to Optuna) -
runs them on the backend like grid trials, tells the study how each ended, and asks
again until the study holds ``n_trials``. A running trial reports its per-epoch
primary metric to the study itself (``StudyReporter``: the study's storage is shared, a
journal file in the sweep directory by default or an RDB URL, ``--optuna-storage``,
on a cluster) and stops when the pruner says so; it is recorded as ``pruned`` with
its last epoch. Ours: on an asynchronous backend (local, Ray, SLURM with ``--wait``) a
point is asked the moment a slot frees; with Ray's ``--asha`` a backend's worth at a time,
so that a batch waits for its slowest trial. TPE samples with ``constant_liar``: a running
trial counts as a poor result, so that the points asked while it runs are not drawn next
to it. A search stopped mid-trial (cancelled, killed) resumes: its interrupted points are
asked again first (``requeue``) and its sampler draws on from where it was (``sampler``).
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


def sampler(spec: SweepSpec, resumed_at: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded with ``search.seed``; a search resumed with ``resumed_at`` points in
    its study draws from ``seed + resumed_at`` (ours: seeded afresh, it would draw its first points again)."""
    s = spec.search
    seed = s.seed + resumed_at
    if s.sampler == "grid":  # the spec guarantees choices for every parameter
        return optuna.samplers.GridSampler({k: p.choices for k, p in s.space.items()}, seed=seed)
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


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
    study = optuna.create_study(study_name=f"{spec.name}-{spec.profile}", storage=storage(store_root, url),
                                sampler=sampler(spec), pruner=pruner(spec), direction=direction, load_if_exists=True)
    if study.trials:
        study.sampler = sampler(spec, len(study.trials))
    return study


def run(launcher, url: str | None) -> optuna.Study:
    """Ask, run on the launcher's backend, tell, until the study holds ``n_trials`` trials. Returns the study.

    On an asynchronous backend (local, Ray, SLURM with ``--wait``) a point is asked the moment a
    slot frees and told the moment its trial ends (``Launcher.drive``). Elsewhere (Ray with
    ``--asha``: a Tune run) a backend's worth of points runs as one batch, and the next is asked
    when all have ended."""
    spec, store, backend = launcher.spec, launcher.store, launcher.backend
    n = spec.search.n_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(spec, store.root, url)
    requeue(study)
    point = _Points(spec, store, study, launcher.meta, url)
    if backend.asynchronous:
        points: dict[str, list] = {}  # trial id -> the points its running trial answers

        def next_job() -> Job | None:
            while asked(study) < n:
                point_asked = point.ask()
                if point_asked is None:
                    continue
                p, t, job = point_asked
                if t.id in points:  # the same point asked again: told when its trial ends
                    points[t.id].append((p, t))
                elif job is None:  # completed before: told from the store
                    point.tell(p, t)
                else:
                    points[t.id] = [(p, t)]
                    return job
            return None

        def ended(job: Job, _status: str) -> None:
            for p, t in points.pop(job.trial_id):
                point.tell(p, t)

        with launcher.progress({}, n) as events:
            launcher.drive(next_job, ended, events)
        return load_study(spec, store.root, url)
    while asked(study) < n:
        batch = [a for a in (point.ask() for _ in range(min(backend.slots, n - asked(study)))) if a is not None]
        jobs = {job.trial_id: job for _, _, job in batch if job is not None}  # the same point twice runs once
        with launcher.progress({j.trial_id: j.meta["label"] for j in jobs.values()}) as events:
            if jobs and not backend.run(list(jobs.values()), events):
                raise RuntimeError(f"the {backend.name} backend only submitted the trials; a search must see them end")
        for p, t, _ in batch:
            point.tell(p, t)
    return load_study(spec, store.root, url)


def asked(study: optuna.Study) -> int:
    """The study's points so far, less those requeued (``requeue``)."""
    return sum(not t.user_attrs.get("requeued") for t in study.get_trials(deepcopy=False))


def requeue(study: optuna.Study) -> None:
    """Points whose trials were running when the last launcher stopped (cancelled, killed) are still
    ``RUNNING`` in the study: each is closed as failed, marked ``requeued`` (no longer counted), and
    asked again first, so that its trial - the same content-addressed one - resumes from its last
    epoch. The launcher holds the store's lock: nothing else runs its points."""
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        optuna.trial.Trial(study, stale._trial_id).set_user_attr("requeued", True)
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(stale.params, skip_if_exists=False)


class _Points:
    """The study's points as the sweep's trials: ``ask`` one (a sampled combination the model does
    not allow is told pruned at once, None), ``tell`` how its trial ended, from the store."""

    def __init__(self, spec: SweepSpec, store, study: optuna.Study, meta: dict, url: str | None):
        self.spec, self.store, self.study, self.meta, self.url = spec, store, study, meta, url
        self.metric = _task(spec).primary

    def ask(self) -> tuple[optuna.Trial, Trial, Job | None] | None:
        """A point, its trial and the job that runs it (None: recorded completed already)."""
        p = self.study.ask()
        try:
            t = trial_for(self.spec, {k: suggest(p, k, s) for k, s in self.spec.search.space.items()})
        except SpecError:  # a sampled combination the model does not allow (e.g. vrnn + sih)
            self.study.tell(p, state=optuna.trial.TrialState.PRUNED)
            return None
        p.set_user_attr("trial_id", t.id)
        if self.store.status(t.id) == Status.COMPLETED:
            return p, t, None
        report = StudyReporter(str(self.store.root), self.url, self.study.study_name, p._trial_id,
                               self.spec.search.pruner, self.metric, t.config.total_epochs)
        return p, t, Job(t.id, t.config.to_dict(), str(self.store.root), {**self.meta, "label": t.label}, report)

    def tell(self, p: optuna.Trial, t: Trial) -> str:
        """Tell the study how ``t`` ended, as the store records it; returns that status."""
        status = self.store.status(t.id)
        if status == Status.COMPLETED:
            told = dict(values=float(self.store.row(t.id, [self.metric])[self.metric]))
        else:
            told = dict(state=optuna.trial.TrialState.PRUNED if status == Status.PRUNED else optuna.trial.TrialState.FAIL)
        try:
            self.study.tell(p, skip_if_finished=True, **told)
        except RuntimeError as e:  # the grid sampler's last point calls study.stop(), which only optimize()
            if "Study.stop" not in str(e):  # allows; the trial was told all the same (optuna stores it first)
                raise
        return status or Status.FAILED


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
        if t.user_attrs.get("requeued"):
            continue
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines = [f"optuna study {study.study_name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        lines.append(f"best: {best.value:.5g} (trial {best.user_attrs.get('trial_id')}) with {best.params}")
    return lines
