"""``prernn-sweep SPEC``: check the inputs, run the sweep (or its search) through ``launch.launcher.Launcher``, print what it did."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from launch.spec import SpecError
from launch.backends import BackendRefused
from records import GOOD


def check_inputs(spec, trials, results: Path, backend: str) -> None:
    """What a trial would only find out later: files, directories, devices (raises SpecError)."""
    from prernn import backbones

    problems = device_problems(spec, trials, backend)
    if spec.data.root is not None and not Path(spec.data.root).expanduser().is_dir():
        problems.append(f"data.root: no such directory {spec.data.root!r}")
    how = spec.backbone.pretrained
    if how not in ("cache", "none"):
        try:
            name = spec.backbone.name
            backbones.weights.resolve(name, True if how == "default" else how, backbones.DEFAULT_FILES.get(name, ()))
        except FileNotFoundError as e:
            problems.append(f"backbone.pretrained: {e}")
    if results.exists() and not results.is_dir():
        problems.append(f"--results-dir: {results} exists and is not a directory")
    if problems:
        raise SpecError(problems)


def device_problems(spec, trials, backend: str) -> list[str]:
    """A GPU asked for must be one a trial can get and will use: ``train.device: cuda`` needs
    ``resources.gpus``, ``resources.gpus`` needs a device other than ``cpu``, and the local
    backend needs a CUDA device on this machine for either."""
    gpus = spec.resources.gpus
    devices = {t.config.train.device for t in trials}
    problems = []
    if "cuda" in devices and not gpus:
        problems.append("train.device: cuda, but resources.gpus is 0: no scheduler gives the trials a GPU "
                        "(set resources.gpus: 1, or train.device: auto)")
    if "cpu" in devices and gpus:
        problems.append(f"train.device: cpu, but resources.gpus is {gpus:g}: a GPU given to a trial must train it "
                        "(set train.device: auto or cuda, or resources.gpus: 0)")
    if backend == "local" and ("cuda" in devices or gpus):
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < math.ceil(gpus) or not have:
            what = "train.device: cuda" if "cuda" in devices else f"resources.gpus: {gpus:g}"
            problems.append(f"{what}, but this machine has {have} CUDA device(s) (torch {torch.__version__}) and "
                            "the local backend runs the trials here; use train.device: auto or cpu with "
                            "resources.gpus: 0, or --backend slurm / ray")
    return problems


def dry_run(spec, trials, backend, console: Console) -> int:
    from launch.cost import disk, estimate

    table = Table(title=f"{spec.name} [{spec.profile} profile]: {len(trials)} trials (dry run: nothing runs, nothing is written)")
    for col in ("id", "trial", "seed", "device", "precision", "parameters", "train TFLOP", "weights+grad+momentum GB"):
        table.add_column(col, justify="right" if col not in ("id", "trial", "device", "precision") else "left")
    total, costs = 0.0, []
    for t in trials:
        c = estimate(t.config)
        costs.append(c)
        tflop = "? (all videos)" if c["train_tflop"] is None else f"{c['train_tflop']:.2f}"
        total += c["train_tflop"] or 0.0
        device = t.config.train.device + (f" ({spec.resources.gpus:g} GPU)" if spec.resources.gpus else "")
        table.add_row(t.id, t.label, str(t.config.seed), device, t.config.train.precision, f"{c['parameters']:,}",
                      tflop, f"{c['memory_gb']:.2f}")
    console.print(table)
    if None in (spec.data.train_videos, spec.data.test_videos):
        console.print("training compute: depends on the number of videos found in data.root")
    else:
        console.print(f"total training compute: {total:.1f} TFLOP")
    if costs:
        peak, end = disk(costs, backend.slots)
        keeps = sorted({t.config.train.keep for t in trials})
        console.print(f"disk in the store: a trial at most "
                      f"{_gb(max(c['disk_peak_gb'] for c in costs))} while it trains and "
                      f"{_gb(max(c['disk_end_gb'] for c in costs))} once ended (train.keep: {', '.join(keeps)}); "
                      f"the sweep at most {_gb(peak)} ({backend.slots} trial{'s' * (backend.slots != 1)} at once "
                      f"on {backend.name}) and "
                      f"{_gb(end)} in the end")
    return 0


def _gb(gb: float) -> str:
    return "0 GB" if gb == 0 else f"{gb:.2f} GB" if gb >= 0.01 else f"{gb * 1024:.1f} MB"


def run(spec, trials, results: Path, backend, args, console: Console) -> int:
    """Run the sweep (``launch.launcher.Launcher``) and print what it did: 0 every trial completed,
    1 some failed, 2 it could not start (nothing of it is left behind), 3 cancelled on request, or
    stopped by a full or read-only disk after trials had started."""
    from launch.launcher import Launcher, Refused

    from . import show
    from .progress import SweepProgress

    _messages_to(console)
    launcher = Launcher(spec, trials, results, backend, lost_after=args.lost_after, retry_failed=args.retry_failed,
                        progress=lambda labels, total=None: SweepProgress(labels, console, total))
    follow = f"follow it with: python launch/sweep.py status {args.spec}" + (
        f" --results-dir {results}" if args.results_dir else "")
    try:
        with launcher:
            if spec.search is not None:
                return search(launcher, args, console)
            plan = launcher.plan()
            console.print(f"{spec.name} [{spec.profile} profile]: {len(trials)} trials, {plan.recorded} already recorded, "
                          + (f"{len(plan.queued)} queued, " if plan.queued else "")
                          + f"{len(plan.pending)} to run on {backend.name} -> {results}")
            launcher.start(plan.pending)
            if not plan.pending and plan.queued:  # all that is left is queued: nothing to submit
                console.print(follow)
                return 0
            try:
                ended = launcher.run(plan.pending)
            except (Refused, BackendRefused):
                raise
            except RuntimeError as e:  # the backend itself broke (e.g. Tune gave up): say so, keep the rest
                print(f"error: {e}", file=sys.stderr)
                ended = True
            if launcher.stopped:
                return cancelled(launcher, console)
            if not ended:
                console.print(follow)
                return 0
            notes = until_decided(launcher, args, console) if args.until_decided else []
            if launcher.stopped:
                return cancelled(launcher, console)
            return show.outcome(spec, trials, launcher.store, console, notes)
    except (Refused, BackendRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        from launch.runner import disk_fault

        if not disk_fault(e):
            raise
        began = any((results / "runs").glob("*")) if results.is_dir() else False
        print(f"error: cannot write {e.filename or results}: {e.strerror}; free space (or fix the filesystem), "
              "then rerun the same command: recorded trials stay, the others resume from their last checkpoint"
              + (" (trials had started: exit 3)" if began else ""), file=sys.stderr)
        return 3 if began else 2


def cancelled(launcher, console: Console) -> int:
    console.print(f"cancelled by `prernn-sweep cancel`: {len(launcher.cancelled)} running trial(s) stopped, none "
                  "started after; rerun the same command to resume them from their last epoch")
    return 3


def until_decided(launcher, args, console: Console) -> list[str]:
    """Rounds of added seeds for the configurations behind undecided claims (cli.seeding decides,
    the launcher records and runs them). Returns the lines that say what was decided."""
    from analysis.data import load
    from prernn.tasks import TASKS

    from . import seeding

    spec, trials, root = launcher.spec, launcher.trials, launcher.store.root
    task = TASKS[spec.task]
    launcher.add_seeds([], args.max_seeds)  # from now on the plan's claims are tested sequentially
    _, tested = seeding.until_decided(spec, trials, lambda: load(root, spec.task, trials, spec.profile),
                                      lambda new: launcher.add_seeds(new, args.max_seeds), task.primary, task.mode,
                                      args.seed_batch, args.max_seeds, console.print)
    lines = seeding.undecided_lines(tested, args.max_seeds)
    return [f"--until-decided: {len(tested) - len(lines)} of {len(tested)} claims decided, {launcher.seeds_added()} "
            "seeds added (decided with confidence sequences: valid however many seeds were added)", *lines]


def search(launcher, args, console: Console) -> int:
    """A ``search:`` spec: Optuna asks, the backend runs (launch.search)."""
    from launch import search as optuna_search

    spec, s = launcher.spec, launcher.spec.search
    console.print(f"{spec.name} [{spec.profile} profile]: Optuna search, {s.n_trials} trials, {s.sampler} sampler, "
                  f"{s.pruner} pruner, on {launcher.backend.name} -> {launcher.store.root}")
    study = launcher.search(args.optuna_storage)
    for line in optuna_search.summary(study):
        console.print(line)
    if launcher.stopped:
        return cancelled(launcher, console)
    df = launcher.store.trials().to_pandas()
    bad = df[~df.status.isin(GOOD)]
    for _, r in bad.iterrows():
        console.print(f"{r.status}: {r.id} {r.label}: {r.error}")
    return 1 if len(bad) else 0


def _messages_to(console: Console) -> None:
    """The launcher's and the backends' messages (the ``launch`` loggers) print as lines of the console."""

    class ToConsole(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(self.format(record))

    logger = logging.getLogger("launch")
    logger.handlers[:] = [ToConsole()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
