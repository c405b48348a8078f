#!/usr/bin/env python
"""Choose each model family's learning rate on a validation split, never the test split.

    python scripts/select_lr.py sweeps/table1.yaml [--profile mini] [--lrs 0.2 0.05 0.0125]
                                [--seeds 0 1] [--validation 10] [--results-dir DIR] [--workers N]

Every trained grid point of the spec (PreRNN, traditional and per-frame networks; the
constant and the probe have no learning rate) runs once per lr and seed with the last
``--validation`` training videos held out of training (``data.validation``) and
evaluated on them (``data.evaluate_on: validation``); ``$PRERNN_NO_TEST_SPLIT`` is set
for every trial, so reading the test split would fail the trial. For each family
(``model.model``) the lr with the best mean validation metric over all its grid points
and seeds wins; the script prints the table and the lines to freeze in the spec
(``train.lr`` per grid block). The trials go to their own store (default
``results/select-lr/<sweep>-<profile>``), so a rerun only runs what is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prernn.trial import NO_TEST_SPLIT  # noqa: E402
from launch.launcher import Quiet  # noqa: E402
from records import Status  # noqa: E402

TRAINED = ("prernn", "traditional", "per-frame")


def selection_spec(spec, lrs: list[float], seeds: list[int], validation: int):
    """The spec's trained grid blocks with a ``train.lr`` axis, evaluated on held-out training videos."""
    blocks = []
    for b in spec.grid:
        kinds = b["model"] if isinstance(b["model"], list) else [b["model"]]
        trained = [k for k in kinds if k in TRAINED]  # the constant and the probe have no learning rate
        if trained:
            blocks.append({**b, "model": trained, "train.lr": list(lrs)})
    if not blocks:
        raise SystemExit(f"error: {spec.name} has no trained models to choose a learning rate for")
    data = spec.data.replace(validation=validation, evaluate_on="validation")
    return spec.replace(name=f"{spec.name}-select-lr", grid=blocks, seeds=list(seeds), data=data)


def choose(df, metric: str, mode: str):
    """Per family and lr: mean and spread of the validation metric; the best lr per family."""
    done = df[df.status == Status.COMPLETED]
    table = (done.groupby(["model.model", "train.lr"])[metric].agg(["mean", "std", "count"]).reset_index()
             .sort_values(["model.model", "train.lr"]))
    pick = table.loc[table.groupby("model.model")["mean"].idxmin() if mode == "min"
                     else table.groupby("model.model")["mean"].idxmax()]
    return table, dict(zip(pick["model.model"], pick["train.lr"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec")
    p.add_argument("--profile")
    p.add_argument("--lrs", type=float, nargs="+", default=[0.2, 0.05, 0.0125])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--validation", type=int, default=10, help="training videos held out (default 10)")
    p.add_argument("--results-dir", type=Path)
    p.add_argument("--workers", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    os.environ[NO_TEST_SPLIT] = "1"  # inherited by every worker: a read of the test split fails its trial

    from launch.backends import create
    from launch.expand import expand
    from launch.launcher import Launcher
    from launch.spec import SpecError, load_spec
    from prernn.tasks import TASKS

    try:
        spec = selection_spec(load_spec(a.spec, a.profile, a.set), a.lrs, a.seeds, a.validation)
        trials = expand(spec, a.spec)
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    task = TASKS[spec.task]
    results = a.results_dir or ROOT / "results" / "select-lr" / f"{spec.name}-{spec.profile}"
    backend = create("local", spec, {"workers": a.workers} if a.workers else {})
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the launcher's messages (pre-training)
    with Launcher(spec, trials, results, backend, progress=lambda labels, total=None: _Lines()) as launcher:
        plan = launcher.plan()  # only what is missing from its own store
        print(f"{spec.name}: {len(trials)} trials ({len(plan.pending)} to run) on {a.validation} held-out training "
              f"videos, lrs {a.lrs}, seeds {a.seeds} -> {results}", flush=True)
        launcher.start(plan.pending)
        launcher.run(plan.pending)
        store = launcher.store
    df = store.trials().to_pandas()
    df = df[df.id.isin({t.id for t in trials})]
    bad = df[df.status != Status.COMPLETED]
    for _, r in bad.iterrows():
        print(f"{r.status}: {r.label} lr {r['train.lr']}: {r.error}", file=sys.stderr)
    table, best = choose(df, task.primary, task.mode)
    print(f"\nvalidation {task.primary} ({'lower' if task.mode == 'min' else 'higher'} is better), "
          "mean over each family's grid points and seeds:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    print("\nfreeze in the spec (train.lr per grid block):")
    for family, lr in best.items():
        print(f"  {family}: train.lr: {lr:g}")
    return 1 if len(bad) else 0


class _Lines(Quiet):
    """Progress as one line per ended trial."""

    def finished(self, trial_id: str, status: str) -> None:
        print(f"{status:9} {trial_id}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
