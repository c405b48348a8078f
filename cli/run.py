"""``prernn-sweep SPEC``: run the sweep's pending trials (or its search) on a backend."""

from __future__ import annotations

import contextlib
import fcntl
import math
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from launch.spec import SpecError
from launch.backends import BackendRefused
from records import BAD, GOOD, Status, Store, arm_id, git_commit, plan_id


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


def dry_run(spec, trials, console: Console) -> int:
    from launch.cost import estimate

    table = Table(title=f"{spec.name} [{spec.profile} profile]: {len(trials)} trials (dry run: nothing runs, nothing is written)")
    for col in ("id", "trial", "seed", "device", "precision", "parameters", "train TFLOP", "weights+grad+momentum GB"):
        table.add_column(col, justify="right" if col not in ("id", "trial", "device", "precision") else "left")
    total = 0.0
    for t in trials:
        c = estimate(t.config)
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
    return 0


def launch_meta(spec) -> dict:
    """The provenance every trial of this launch carries (``records.trial_row``)."""
    return {"sweep": spec.name, "profile": spec.profile, "git_commit": git_commit(), "gpus": spec.resources.gpus}


def run(spec, trials, results: Path, backend, args, console: Console) -> int:
    from . import show

    store = Store(results, spec.task)
    created = not store.root.exists()
    store.root.mkdir(parents=True, exist_ok=True)
    lock = open(store.root / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"error: another launcher is running this sweep in {results}", file=sys.stderr)
        return 2
    if spec.search is not None:
        return run_search(spec, store, backend, args, created, console)
    recorded = store.statuses()
    queued = backend.active_trials(store.root)
    hung = {tid for tid in queued if store.run_state(tid, args.lost_after) == Status.LOST}
    if hung:  # the scheduler says running, the heartbeat says dead: end them, run them again
        backend.cancel_trials(store.root, hung)
        console.print(f"{len(hung)} trial(s) without a heartbeat for {args.lost_after} s: cancelled, rerunning")
        queued -= hung
    rerun = BAD if args.retry_failed else set()
    pending = [t for t in trials if t.id not in queued and (recorded.get(t.id) is None or recorded[t.id] in rerun)]
    skipped = sum(t.id in recorded for t in trials) - sum(recorded.get(t.id) in rerun for t in trials)
    console.print(f"{spec.name} [{spec.profile} profile]: {len(trials)} trials, {skipped} already recorded, "
                  + (f"{len(queued & {t.id for t in trials})} queued, " if queued else "")
                  + f"{len(pending)} to run on {backend.name} -> {results}")
    if not pretrained_or_refused(spec, pending, store, created, console):
        return 2
    store.create()
    store.write_spec(spec)
    meta = launch_meta(spec)
    follow = f"follow it with: python launch/sweep.py status {args.spec}" + (
        f" --results-dir {results}" if args.results_dir else "")
    if not pending and queued & {t.id for t in trials}:  # all that is left is queued: nothing to submit
        console.print(follow)
        return 0
    try:
        ended = run_jobs(pending, backend, store, meta, console)
    except BackendRefused as e:
        print(f"error: {e}", file=sys.stderr)
        if created and not store.statuses() and not backend.held(store.root):  # nothing of this run is anywhere
            shutil.rmtree(store.root, ignore_errors=True)
        return 2
    if not ended:
        console.print(follow)
        return 0
    notes = until_decided(spec, trials, backend, store, meta, args, console) if args.until_decided else []
    return show.outcome(spec, trials, store, console, notes)


def run_jobs(pending, backend, store, meta: dict, console: Console) -> bool:
    """Run the trials on the backend with live progress; True once they have all ended."""
    from launch.backends import Job

    jobs = [Job(t.id, t.config.to_dict(), str(store.root), {**meta, "label": t.label}) for t in pending]
    return run_on(jobs, backend, console)


def run_on(jobs, backend, console: Console) -> bool:
    from .progress import SweepProgress

    with SweepProgress({j.trial_id: j.meta.get("label", j.trial_id) for j in jobs}, console) as progress:
        try:
            return backend.run(jobs, progress)
        except BackendRefused:
            raise
        except RuntimeError as e:  # the backend itself broke (e.g. a worker was killed): say so, keep the rest
            print(f"error: {e}", file=sys.stderr)
            return True


def until_decided(spec, trials, backend, store, meta: dict, args, console: Console) -> list[str]:
    """Rounds of added seeds for the configurations behind undecided claims (cli.seeding), each
    recorded in the store before it runs. Returns the lines that say what was decided."""
    from analysis.data import load
    from prernn.tasks import TASKS

    from . import seeding

    task = TASKS[spec.task]
    plan = plan_id(t.id for t in trials)
    added = dict((store.seeding(plan) or {}).get("trials", {}))  # id -> arm id of every seed added so far
    store.write_seeding(plan, {"trials": added, "max_seeds": args.max_seeds})  # from now on: tested sequentially

    def run(new) -> bool:
        added.update({t.id: arm_id(t.config) for t in new})
        store.write_seeding(plan, {"trials": added, "max_seeds": args.max_seeds})
        todo = [t for t in new if store.status(t.id) is None]
        return pretrained_or_refused(spec, todo, store, False, console) and run_jobs(todo, backend, store, meta, console)

    _, tested = seeding.until_decided(spec, trials, lambda: load(store.root, spec.task, trials, spec.profile), run,
                                        task.primary, task.mode, args.seed_batch, args.max_seeds, console.print)
    lines = seeding.undecided_lines(tested, args.max_seeds)
    return [f"--until-decided: {len(tested) - len(lines)} of {len(tested)} claims decided, {len(added)} seeds added "
            "(decided with confidence sequences: valid however many seeds were added)", *lines]


def pretrained_or_refused(spec, trials, store, created: bool, console: Console) -> bool:
    """Train (or find) every mini pre-training the trials start from, once, before any trial
    runs. A pre-training whose features fail its gate is refused: say why, write nothing
    (a sweep directory this run created is removed) and return False."""
    if spec.backbone.pretrained != "cache" or not trials:
        return True
    from launch.runner import ensure_pretrained
    from prernn.train.pretrain import PretrainingRefused

    try:
        ensure_pretrained([t.config for t in trials], console.print)
    except PretrainingRefused as e:
        print(f"error: {e}", file=sys.stderr)
        if created:
            shutil.rmtree(store.root, ignore_errors=True)
        return False
    return True


def run_search(spec, store, backend, args, created: bool, console: Console) -> int:
    """A ``search:`` spec: Optuna asks, the backend runs (launch.search)."""
    from launch import search

    if not backend.ends_trials:
        print(f"error: a search asks for its next points once the last have ended: with --backend {backend.name} "
              "add --wait", file=sys.stderr)
        return 2
    if not pretrained_or_refused(spec, [search.trial_for(spec, {})], store, created, console):
        return 2
    store.create()
    store.write_spec(spec)
    s = spec.search
    console.print(f"{spec.name} [{spec.profile} profile]: Optuna search, {s.n_trials} trials, {s.sampler} sampler, "
                  f"{s.pruner} pruner, on {backend.name} -> {store.root}")
    from .progress import SweepProgress

    # an asynchronous backend's trials start one by one, under one progress; the others' batch by batch
    with SweepProgress({}, console, total=s.n_trials) if backend.asynchronous else contextlib.nullcontext() as progress:
        study = search.run(spec, store, backend, launch_meta(spec), args.optuna_storage,
                           lambda jobs, b: run_on(jobs, b, console), progress)
    for line in search.summary(study):
        console.print(line)
    df = store.trials().to_pandas()
    bad = df[~df.status.isin(GOOD)]
    for _, r in bad.iterrows():
        console.print(f"{r.status}: {r.id} {r.label}: {r.error}")
    return 1 if len(bad) else 0
