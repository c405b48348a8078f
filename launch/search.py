"""Optuna search (a spec's ``search:``): sampled trials run and are stored like any other.

Each sampled point overrides the grid's first block, is expanded and validated
like a grid point, and becomes a content-addressed trial in the store: a point
already completed there is not rerun, its stored value is given to Optuna. The
per-epoch primary metric feeds the pruner; a pruned trial is recorded as
``pruned`` with its last epoch. The study lives in a storage that concurrent
workers share: a journal file in the sweep directory by default, or an RDB URL
(``--optuna-storage``) on a cluster.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

import optuna

from prernn.settings import parse, to_dict

from .expand import Trial, expand
from .spec import SpecError, SweepSpec


def distribution(p) -> optuna.distributions.BaseDistribution:
    if p.choices is not None:
        return optuna.distributions.CategoricalDistribution(p.choices)
    if p.integer:
        return optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
    return optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)


def suggest(trial: optuna.Trial, name: str, p):
    if p.choices is not None:
        return trial.suggest_categorical(name, p.choices)
    if p.integer:
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    return trial.suggest_float(name, p.low, p.high, log=p.log)


def sampler(spec: SweepSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Each worker samples with its own seed (same seeds would propose the same points)."""
    s = spec.search
    if s.sampler == "grid":  # the spec guarantees choices for every parameter
        return optuna.samplers.GridSampler({k: p.choices for k, p in s.space.items()}, seed=s.seed + worker)
    return {"tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler}[s.sampler](seed=s.seed + worker)


def pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "none": optuna.pruners.NopPruner}[spec.search.pruner]()


def storage(store_root: Path, url: str | None):
    if url:
        return url
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    store_root.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(store_root / "optuna.journal")))


def trial_for(spec: SweepSpec, params: dict) -> Trial:
    block = {**spec.grid[0], **params}
    return expand(spec.replace(grid=[block]), "search")[0]


def load_study(spec: SweepSpec, store_root: Path, url: str | None, worker: int = 0) -> optuna.Study:
    from prernn.tasks import TASKS

    direction = "minimize" if TASKS[spec.task].mode == "min" else "maximize"
    return optuna.create_study(study_name=f"{spec.name}-{spec.profile}", storage=storage(store_root, url),
                               sampler=sampler(spec, worker), pruner=pruner(spec), direction=direction, load_if_exists=True)


def objective(spec: SweepSpec, store_root: str, meta: dict):
    from prernn.tasks import TASKS

    from .runner import Pruned, execute
    from .store import Store

    metric = TASKS[spec.task].primary
    store = Store(store_root, spec.task)

    def run(trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, p) for k, p in spec.search.space.items()}
        try:
            t = trial_for(spec, params)
        except SpecError as e:  # a sampled combination the model does not allow (e.g. vrnn + sih)
            raise optuna.TrialPruned(f"invalid combination: {e}") from None
        trial.set_user_attr("trial_id", t.id)
        if store.status(t.id) != "completed":

            def report(row: dict) -> None:
                trial.report(row[metric], row["epoch"])
                # after the last epoch there is nothing left to save: a finished trial is completed
                if row["epoch"] + 1 < t.config.total_epochs and trial.should_prune():
                    raise Pruned

            status = execute(t.id, t.config.to_dict(), store_root, {**meta, "label": t.label}, report=report)
            if status == "pruned":
                raise optuna.TrialPruned()
            if status != "completed":
                raise RuntimeError(f"trial {t.id} {status}")
        return float(store.row(t.id, [metric])[metric])

    return run


def _worker(spec_json: dict, store_root: str, url: str | None, meta: dict, threads: int, index: int,
            share: int) -> int:
    from .backends.local import _init_worker, slot_gpus

    spec = parse(SweepSpec, spec_json)
    _init_worker(threads, slot_gpus(index, spec.resources.gpus))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(spec, Path(store_root), url, index)
    study.optimize(objective(spec, store_root, {**meta, "worker": f"optuna/{os.getpid()}"}),
                   n_trials=share, catch=(RuntimeError,))
    return len(study.trials)


def run_local(spec: SweepSpec, store_root: Path, url: str | None, meta: dict, workers: int) -> optuna.Study:
    """``workers`` processes optimise one shared study until it holds ``n_trials`` trials.

    Each worker gets a fixed share of the remaining budget: a shared "stop at n" check
    after each trial lets concurrent workers overshoot it."""
    import multiprocessing as mp

    study = load_study(spec, store_root, url)  # create it once, before the workers race to
    if len(study.trials) >= spec.search.n_trials:
        return study
    remaining = spec.search.n_trials - len(study.trials)
    workers = max(1, min(workers, remaining))
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, to_dict(spec), str(store_root), url, meta,
                               spec.resources.cpus, i, share) for i, share in enumerate(shares)]
        wait(futures)
        for f in futures:
            f.result()
    return load_study(spec, store_root, url)


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
