"""Run a PreRNN ablation sweep declared in YAML.

    prernn-sweep SPEC [--profile mini|paper] [--backend local|ray|slurm] [--dry-run]
                      [--set key=value ...] [--results-dir DIR] [backend options]
    prernn-sweep status SPEC [--profile ...] [--set ...] [--results-dir DIR]
    prernn-sweep cancel SPEC [...]          stop the sweep: its launcher's running trials, its SLURM jobs
    prernn-sweep report SPEC [...] [--output FILE]   one self-contained HTML report
    prernn-sweep summary SPEC [...]         the claims and the table, from the store (read-only)

A spec's results live in results/<sweep name>/<profile>/ unless --results-dir says
otherwise; the tables and claims use exactly the trials the spec expands to now
(profile and --set applied) and say what else the store holds.

(``python launch/sweep.py`` is the same command.) Exit codes: 0 every trial of the
spec completed, 1 some failed or diverged, 2 bad input (nothing is written), 3 cancelled
(``cancel``: a rerun resumes the stopped trials).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

COMMANDS = ("run", "status", "cancel", "report", "summary")
LOST_AFTER = 120  # seconds without a heartbeat (trials beat every 10 s)


def build_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"prernn-sweep{'' if command == 'run' else ' ' + command}",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="sweep spec, e.g. sweeps/table1.yaml")
    p.add_argument("--profile", help="profile from the spec's `profiles:` (default: the spec's `profile`, else mini)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field of the merged spec, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--data-root", metavar="DIR",
                   help="the real dataset's directory (paper profiles); short for --set data.root=DIR")
    p.add_argument("--results-dir", type=Path, help="the sweep's store (default: results/<sweep name>/<profile>/)")
    if command == "report":
        p.add_argument("--output", type=Path, help="the HTML file (default: <results>/report.html)")
    if command in ("run", "status"):
        p.add_argument("--lost-after", type=_lost_after, default=LOST_AFTER, metavar="SECONDS",
                       help="a started trial without a heartbeat for this long is lost: its worker died "
                       f"without a trace; `status` shows it, a rerun runs it again (default: {LOST_AFTER})")
    if command == "run":
        from launch.backends import BACKENDS

        p.add_argument("--backend", default="local", help=f"where trials run: {', '.join(BACKENDS.names())} (default: local)")
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
        add_backend_options(p)
    return p


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """One flag per backend option (``Backend.Options``), absent from the namespace unless given."""
    from launch.backends import options

    group = p.add_argument_group("backend options (a flag is refused by a backend that does not take it)")
    for name, (f, ann, backends) in options().items():
        rule = f.metadata.get("rule")
        text = f"{rule.doc if rule else ''} [{', '.join(backends)}]".replace("%", "%%")  # argparse formats help
        args = [f"--{name.replace('_', '-')}"]
        kinds = [a for a in typing.get_args(ann) if a is not type(None)]  # fields_of resolves annotations
        kind = (kinds or [ann])[0]
        if kind is bool:
            group.add_argument(*args, dest=name, action="store_true", default=argparse.SUPPRESS, help=text)
        else:
            kind = _positive if kind is int and rule and rule.ge == 1 else kind
            group.add_argument(*args, dest=name, type=kind, default=argparse.SUPPRESS, help=text)


def backend_options(args: argparse.Namespace) -> dict:
    from launch.backends import options

    return {k: getattr(args, k) for k in options() if hasattr(args, k)}


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


def default_results(spec) -> Path:
    """results/<sweep name>/<profile>: each profile its own store. A store of the old layout
    (every profile in results/<sweep name>) is named, never read or moved silently."""
    old, new = Path("results") / spec.name, Path("results") / spec.name / spec.profile
    if (old / "trials").is_dir() and not new.exists():
        print(f"note: {old} holds a store of the old layout (every profile together); this command uses {new}. "
              f"Read the old one with --results-dir {old}", file=sys.stderr)
    return new


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from launch.backends import ConfigError, WrongBackendOption, create
    from launch.spec import SpecError

    from . import run, show

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    args = build_parser(command).parse_args(argv)  # exits 2 on bad usage
    given = backend_options(args) if command == "run" else {}
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)
    try:
        from launch.expand import expand
        from launch.spec import load_spec

        # a JSON string is YAML too: the path stays a string whatever it looks like
        overrides = args.set + ([f"data.root={json.dumps(args.data_root)}"] if args.data_root else [])
        spec = load_spec(args.spec, args.profile, overrides)
        trials = expand(spec, args.spec)
        results = args.results_dir or default_results(spec)
        if command == "status":
            return show.status(spec, trials, results, args.lost_after, console)
        if command == "cancel":
            return show.cancel(spec, results, console)
        if command == "report":
            return show.report(spec, trials, results, args.output, console)
        if command == "summary":
            return show.summary(spec, trials, results, console)
        backend = create(args.backend, spec, given)
        if args.until_decided and not backend.ends_trials:
            print(f"error: --until-decided tests the claims once the trials have ended: with --backend {args.backend} "
                  "add --wait", file=sys.stderr)
            return 2
        if args.dry_run:  # planning works without the data or a GPU; say what a real run would lack
            try:
                run.check_inputs(spec, trials, results, args.backend)
            except SpecError as e:
                for problem in e.problems:
                    print(f"warning: a real run would stop here: {problem}", file=sys.stderr)
            return run.dry_run(spec, trials, backend, console)
        run.check_inputs(spec, trials, results, args.backend)
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except ConfigError as e:  # a backend option out of its range
        for problem in e.problems:
            print(f"error: --{'.'.join(map(str, problem.loc)).replace('_', '-')}: {problem.text}", file=sys.stderr)
        return 2
    except (WrongBackendOption, KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run.run(spec, trials, results, backend, args, console)


if __name__ == "__main__":
    sys.exit(main())
