#!/usr/bin/env python
"""Run a PreRNN ablation sweep declared in YAML.

    python launch/sweep.py SPEC [--profile mini|paper] [--backend local] [--dry-run]
                                [--set key=value ...] [--results-dir DIR] [--workers N]
    python launch/sweep.py status SPEC [--profile ...] [--set ...] [--results-dir DIR]
    python launch/sweep.py cancel SPEC [...]        cancel the sweep's queued/running SLURM jobs
    python launch/sweep.py report SPEC [...] [--output FILE]   one self-contained HTML report

Exit codes: 0 every trial of the spec completed, 1 some failed or diverged,
2 bad input (nothing is written).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a script from a clean checkout
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from launch.spec import SpecError  # noqa: E402

COMMANDS = ("run", "status", "cancel", "report")
LOST_AFTER = 120  # seconds without a heartbeat (trials beat every 10 s)


def build_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"sweep.py{'' if command == 'run' else ' ' + command}",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="sweep spec, e.g. sweeps/table1.yaml")
    p.add_argument("--profile", help="profile from the spec's `profiles:` (default: the spec's `profile`, else mini)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field of the merged spec, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--data-root", metavar="DIR",
                   help="the real dataset's directory (paper profiles); short for --set data.root=DIR")
    p.add_argument("--results-dir", type=Path, help="the sweep's store (default: results/<sweep name>/)")
    if command == "report":
        p.add_argument("--output", type=Path, help="the HTML file (default: <results>/report.html)")
    if command in ("run", "status"):
        p.add_argument("--lost-after", type=_lost_after, default=LOST_AFTER, metavar="SECONDS",
                       help="a started trial without a heartbeat for this long is lost: its worker died "
                       f"without a trace; `status` shows it, a rerun runs it again (default: {LOST_AFTER})")
    if command == "run":
        p.add_argument("--backend", default="local", help="where trials run (default: local)")
        p.add_argument("--workers", type=_positive, help="parallel trials (local; default: cores / resources.cpus)")
        p.add_argument("--dry-run", action="store_true", help="print the trial table and costs; run and write nothing")
        p.add_argument("--retry-failed", action="store_true",
                       help="also rerun failed and diverged trials (resuming from their last checkpoint)")
        p.add_argument("--optuna-storage", help="RDB URL of the Optuna study for `search:` specs "
                       "(default: a journal file in the sweep directory)")
        p.add_argument("--until-decided", action="store_true",
                       help="after the run, add seeds to the configurations behind inconclusive claims, a batch at "
                       "a time, until every claim is decided or --max-seeds is reached")
        p.add_argument("--max-seeds", type=_positive, default=10, help="seeds per configuration at most (default 10)")
        p.add_argument("--seed-batch", type=_positive, default=2, help="seeds added per round (default 2)")
        p.add_argument("--max-failures", type=int, default=2,
                       help="times a trial whose worker died is run again (local, ray; default: 2)")
        r = p.add_argument_group("ray backend")
        r.add_argument("--ray-address", help="join this Ray cluster (default: start a local one)")
        r.add_argument("--asha", action="store_true", help="ASHA early stopping on the task's metric")
        s = p.add_argument_group("slurm backend (defaults: the spec's `slurm:` section)")
        s.add_argument("--wait", action="store_true", help="block until every submitted trial has ended")
        for opt in ("partition", "account", "qos", "constraint"):
            s.add_argument(f"--{opt}")
        s.add_argument("--gpus-per-node", type=int)
        s.add_argument("--array-parallelism", type=_positive, help="array tasks running at once")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _lost_after(text: str) -> int:
    from launch.runner import HEARTBEAT_SECONDS

    value = _positive(text)
    if value < 3 * HEARTBEAT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least {3 * HEARTBEAT_SECONDS:.0f} seconds (trials beat every "
                                         f"{HEARTBEAT_SECONDS:.0f} s; less would call running trials lost), got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    args = build_parser(command).parse_args(argv)  # exits 2 on bad usage
    if command == "run" and args.until_decided and args.backend == "slurm" and not args.wait:
        print("error: --until-decided tests the claims once the trials have ended: with --backend slurm add --wait",
              file=sys.stderr)
        return 2
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)
    try:
        from launch.expand import expand
        from launch.spec import load_spec

        # a JSON string is YAML too: the path stays a string whatever it looks like
        overrides = args.set + ([f"data.root={json.dumps(args.data_root)}"] if args.data_root else [])
        spec = load_spec(args.spec, args.profile, overrides)
        trials = expand(spec, args.spec)
        results = args.results_dir or Path("results") / spec.name
        if command == "status":
            return status(spec, trials, results, args.lost_after, console)
        if command == "cancel":
            return cancel(spec, results, console)
        if command == "report":
            return report(spec, trials, results, args.output, console)
        from launch.backends import BACKENDS

        backend_cls = BACKENDS[args.backend]()
        if args.dry_run:  # planning works without the data or a GPU; say what a real run would lack
            try:
                check_inputs(spec, trials, results, args.backend)
            except SpecError as e:
                for problem in e.problems:
                    print(f"warning: a real run would stop here: {problem}", file=sys.stderr)
            return dry_run(spec, trials, console)
        check_inputs(spec, trials, results, args.backend)
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run(spec, trials, results, backend_cls, args, console)


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


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def run(spec, trials, results: Path, backend_cls, args, console: Console) -> int:
    from launch.store import Store

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
        from launch import search

        if not pretrained_or_refused(spec, [search.trial_for(spec, {})], store, created, console):
            return 2
        store.create()
        store.write_spec(spec)
        return run_search(spec, store, args, console)
    backend = backend_cls.from_cli(args, spec)
    recorded = store.statuses()
    queued = backend.active_trials(store.root)
    hung = {tid for tid in queued if store.run_state(tid, args.lost_after) == "lost"}
    if hung:  # the scheduler says running, the heartbeat says dead: end them, run them again
        backend.cancel_trials(store.root, hung)
        console.print(f"{len(hung)} trial(s) without a heartbeat for {args.lost_after} s: cancelled, rerunning")
        queued -= hung
    rerun = {"failed", "diverged"} if args.retry_failed else set()
    pending = [t for t in trials if t.id not in queued and (recorded.get(t.id) is None or recorded[t.id] in rerun)]
    skipped = sum(t.id in recorded for t in trials) - sum(recorded.get(t.id) in rerun for t in trials)
    console.print(f"{spec.name} [{spec.profile} profile]: {len(trials)} trials, {skipped} already recorded, "
                  + (f"{len(queued & {t.id for t in trials})} queued, " if queued else "")
                  + f"{len(pending)} to run on {args.backend} -> {results}")
    if not pretrained_or_refused(spec, pending, store, created, console):
        return 2
    store.create()
    store.write_spec(spec)
    meta = {"sweep": spec.name, "profile": spec.profile, "git_commit": git_commit(), "gpus": spec.resources.gpus}
    if not run_jobs(pending, backend, store, meta, console):
        console.print(f"follow it with: python launch/sweep.py status {args.spec}"
                      + (f" --results-dir {results}" if args.results_dir else ""))
        return 0
    notes = []
    if args.until_decided:
        added, notes = until_decided(spec, trials, backend, store, meta, args, console)
        trials = trials + added
    return report_outcome(spec, trials, store, console, notes)


def run_jobs(pending, backend, store, meta: dict, console: Console) -> bool:
    """Run the trials on the backend with live progress; True once they have all ended."""
    from launch.backends import Job
    from launch.progress import SweepProgress

    jobs = [Job(t.id, t.config.to_dict(), str(store.root), {**meta, "label": t.label}) for t in pending]
    with SweepProgress({t.id: t.label for t in pending}, console) as progress:
        try:
            return backend.run(jobs, progress)
        except RuntimeError as e:  # the backend itself broke (e.g. a worker was killed): say so, keep the rest
            print(f"error: {e}", file=sys.stderr)
            return True


def until_decided(spec, trials, backend, store, meta: dict, args, console: Console):
    """Rounds of added seeds for the configurations behind undecided claims (launch.seeding).
    Returns the trials added and the lines that say which claims stayed undecided."""
    from launch import seeding
    from prernn.tasks import TASKS

    task = TASKS[spec.task]
    known = {t.id: t for t in trials}
    for round_ in range(1, 1000):
        df = store.trials().to_pandas()
        df = df[df.id.isin(known)]
        tested, arms = seeding.test_claims(spec, df, task.primary, task.mode)
        new = [t for t in seeding.more_seeds(tested, arms, known, args.seed_batch, args.max_seeds)
               if store.status(t.id) is None]
        undecided = int((tested.verdict == "inconclusive").sum())
        if not undecided or not new:
            break
        console.print(f"--until-decided, round {round_}: {undecided} of {len(tested)} claims undecided: "
                      f"{len(new)} trials with more seeds")
        if not pretrained_or_refused(spec, new, store, False, console) or not run_jobs(new, backend, store, meta,
                                                                                       console):
            break
        known.update({t.id: t for t in new})
    lines = seeding.undecided_lines(tested, args.max_seeds)
    decided = len(tested) - len(lines)
    added = [t for t in known.values() if t.id not in {x.id for x in trials}]
    return added, [f"--until-decided: {decided} of {len(tested)} claims decided, {len(added)} seeds added", *lines]


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


def run_search(spec, store, args, console: Console) -> int:
    from launch import search

    meta = {"sweep": spec.name, "profile": spec.profile, "git_commit": git_commit(), "gpus": spec.resources.gpus}
    s = spec.search
    console.print(f"{spec.name} [{spec.profile} profile]: Optuna search, {s.n_trials} trials, {s.sampler} sampler, "
                  f"{s.pruner} pruner, on {args.backend} -> {store.root}")
    if args.backend == "local":
        from launch.backends.local import default_workers

        study = search.run_local(spec, store.root, args.optuna_storage, meta,
                                 args.workers or default_workers(spec.resources.cpus))
    elif args.backend == "ray":
        from launch.backends import BACKENDS

        study = BACKENDS["ray"]().from_cli(args, spec).run_search(spec, store.root, args.optuna_storage, meta)
    else:
        print(f"error: --backend {args.backend}: searches run on local or ray", file=sys.stderr)
        return 2
    for line in search.summary(study):
        console.print(line)
    df = store.trials().to_pandas()
    bad = df[~df.status.isin(["completed", "pruned"])]
    for _, r in bad.iterrows():
        console.print(f"{r.status}: {r.id} {r.label}: {r.error}")
    return 1 if len(bad) else 0


def report_outcome(spec, trials, store, console: Console, notes: list[str] = ()) -> int:
    from prernn.tasks import TASKS

    ids = {t.id for t in trials}
    df = store.trials().to_pandas()
    df = df[df.id.isin(ids)]
    task = TASKS[spec.task]
    print_summary(spec, df, task.primary, task.mode, console)
    for note in notes:
        console.print(note)
    bad = df[~df.status.isin(["completed", "pruned"])]
    for _, r in bad.iterrows():
        console.print(f"{r.status}: {r.id} {r.label}: {r.error}")
    missing = len(ids) - len(df)
    console.print(f"{(df.status == 'completed').sum()} completed, {len(bad)} failed or diverged"
                  + (f", {missing} not run" if missing else "") + f"; results in {store.root}")
    return 0 if len(bad) == 0 and missing == 0 else 1


def print_summary(spec, df, metric: str, mode: str, console: Console) -> None:
    """The claims, the paper's layout and the reference rows (analysis.summary), in 80 columns."""
    import pandas as pd
    from rich import box

    from analysis.summary import interval, summarize, verdict_text

    s = summarize(df, spec, metric, mode)
    # the summary fits a terminal of 80 columns, whatever the width of the tables above it
    console = Console(file=console.file, width=min(console.width, 80), highlight=False, markup=False)
    console.print(s.title)
    if s.claims is not None and len(s.claims):
        t = Table(title="claims (> : beats; improvement + as claimed, 95% t interval; Holm within a table)",
                  box=box.SIMPLE,
                  title_justify="left", pad_edge=False)
        for col, justify in (("claim", "left"), ("improvement", "right"), ("n", "right"), ("verdict", "left")):
            t.add_column(col, justify=justify, overflow="fold")
        for _, r in s.claims.iterrows():
            t.add_row(r.claim, interval(r, s.digits), str(int(r.n)), verdict_text(r))
        console.print(t)
    if s.layout is not None:
        t = Table(title=f"the paper's {spec.reference}: ours ±95% | the paper's" + (" (ours - paper)" if spec.profile
                  == "paper" else ""), box=box.SIMPLE, title_justify="left", pad_edge=False, collapse_padding=True)
        for i, col in enumerate(s.layout_header):  # each cell on one line: 78 columns for Table 1
            t.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
        for line in s.layout.values.tolist():
            t.add_row(*line)
        console.print(t)
    if s.listing is not None:
        t = Table(box=box.SIMPLE, pad_edge=False)
        for col in s.listing.columns:
            t.add_column(str(col))
        for _, r in s.listing.iterrows():
            t.add_row(str(r.label), str(r.seed), str(r.status), "—" if pd.isna(r[metric]) else f"{r[metric]:.4f}")
        console.print(t)
    for note in s.notes:
        console.print(note, style="bold red" if note.startswith("WARNING") else None)


def status(spec, trials, results: Path, lost_after: float, console: Console) -> int:
    import pandas as pd

    from launch.store import Store
    from prernn.tasks import TASKS

    store = Store(results, spec.task)
    df = store.trials().to_pandas().set_index("id") if (results / "trials").is_dir() else None
    queued = _slurm_states(results)
    metric = TASKS[spec.task].primary
    table = Table(title=f"{spec.name} [{spec.profile} profile] in {results}")
    for col in ("id", "trial", "seed", "status", "epochs", metric):
        table.add_column(col)
    counts: dict[str, int] = {}
    for t in trials:
        if df is not None and t.id in df.index:
            r = df.loc[t.id]
            state, epochs, value = r.status, str(r.epochs_done), "" if pd.isna(r[metric]) else f"{r[metric]:.4f}"
        else:
            done = _epochs_done(store, t.id)
            scheduler = queued[t.id][0].lower() if t.id in queued else None  # SLURM's own word
            state = scheduler
            if scheduler in (None, "running"):  # the heartbeat tells running from lost
                state = store.run_state(t.id, lost_after) or scheduler or ("started" if done else "pending")
            epochs, value = str(done), ""
        counts[state] = counts.get(state, 0) + 1
        table.add_row(t.id, t.label, str(t.config.seed), state, epochs, value)
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def report(spec, trials, results: Path, output: Path | None, console: Console) -> int:
    from analysis.report import write

    if not (results / "trials").is_dir():
        print(f"error: no results in {results} (run the sweep first, or pass --results-dir)", file=sys.stderr)
        return 2
    out = write(spec, trials, results, output or results / "report.html")
    console.print(f"{spec.name}: report written to {out}")
    return 0


def _slurm_states(results: Path) -> dict[str, tuple[str, str]]:
    from launch.backends import slurm

    if not slurm.submissions(results):
        return {}
    try:
        return slurm.trial_states(results)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"warning: cannot read SLURM job states ({e})", file=sys.stderr)
        return {}


def cancel(spec, results: Path, console: Console) -> int:
    from launch.backends import slurm

    states = _slurm_states(results)
    jobs = sorted({job.split("_")[0] for state, job in states.values() if state in slurm.ACTIVE})
    if not jobs:
        console.print(f"{spec.name}: no queued or running SLURM jobs in {results}")
        return 0
    subprocess.run(["scancel", *jobs], check=True)
    console.print(f"{spec.name}: cancelled SLURM array job(s) {', '.join(jobs)}")
    return 0


def _epochs_done(store, trial_id: str) -> int:
    import pyarrow.parquet as pq

    path = store.epochs_dir / f"{trial_id}.parquet"
    return pq.read_metadata(path).num_rows if path.is_file() else 0


if __name__ == "__main__":
    sys.exit(main())
