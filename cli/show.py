"""``status``, ``cancel``, ``report``, ``summary``, and the summary a run ends with.

Each reads exactly the spec's trials (``analysis.data.load``: the plan its expansion gives
now, and the seeds ``--until-decided`` added to it) and says what else the store holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from records import GOOD, NoStore, Status, Store, is_store


def outcome(spec, trials, store: Store, console: Console, notes: list[str] = ()) -> int:
    """The summary of the spec's trials, what went wrong, and the exit code (0: all completed)."""
    from analysis.data import MISSING, load
    from prernn.tasks import TASKS

    data = load(store.root, spec.task, trials, spec.profile)
    task = TASKS[spec.task]
    print_summary(spec, data, task.primary, task.mode, console)
    for note in notes:
        console.print(note)
    df = data.trials
    bad = df[~df.status.isin(GOOD) & (df.status != MISSING)]
    for _, r in bad.iterrows():
        console.print(f"{r.status}: {r.id} {r.label}: {r.error}")
    missing = int((df.status == MISSING).sum())
    console.print(f"{(df.status == Status.COMPLETED).sum()} completed, {len(bad)} failed or diverged"
                  + (f", {missing} not run" if missing else "") + f"; results in {store.root}")
    return 0 if len(bad) == 0 and missing == 0 else 1


def summary(spec, trials, results: Path, console: Console) -> int:
    """``prernn-sweep summary SPEC``: the claims and the table from the store; runs and writes nothing."""
    from prernn.tasks import TASKS

    from analysis.data import load

    if not (results / "trials").is_dir():
        print(f"error: no results in {results} (run the sweep first, or pass --results-dir)", file=sys.stderr)
        return 2
    task = TASKS[spec.task]
    print_summary(spec, load(results, spec.task, trials, spec.profile), task.primary, task.mode, console)
    return 0


def print_summary(spec, data, metric: str, mode: str, console: Console) -> None:
    """The claims, the paper's layout and the reference rows (analysis.summary), in 80 columns."""
    import pandas as pd
    from rich import box

    from analysis.summary import interval, legend, level_text, summarize, verdict_text

    s = summarize(data, spec, metric, mode)
    # the summary fits a terminal of 80 columns, whatever the width of the tables above it
    console = Console(file=console.file, width=min(console.width, 80), highlight=False, markup=False)
    console.print(s.title)
    if s.claims is not None and len(s.claims):
        t = Table(title=f"claims (> : beats; improvement + as claimed, [its {level_text(s.claims)} interval: Holm's "
                  "level within a table, the one the verdict is read from])",
                  box=box.SIMPLE, title_justify="left", pad_edge=False, collapse_padding=True)
        t.add_column("claim", overflow="fold")  # a long claim folds; its numbers and verdict stay on one line
        for col, justify in (("improvement", "right"), ("n", "right"), ("verdict", "left")):
            t.add_column(col, justify=justify, no_wrap=True)
        for _, r in s.claims.iterrows():
            t.add_row(r.claim, interval(r, s.digits), str(int(r.n)), verdict_text(r))
        console.print(t)
        words = legend(s.claims)
        if words:
            console.print(words)
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


def held(spec, results: Path) -> dict:
    """trial id -> ``launch.backends.Held``, from every backend whose scheduler knows the sweep's trials."""
    from launch.backends import all_backends

    out = {}
    for backend in all_backends(spec):
        try:
            out.update(backend.held(results))
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"warning: cannot read the {backend.name} backend's job states ({e})", file=sys.stderr)
    return out


def status(spec, trials, results: Path, lost_after: float, console: Console) -> int:
    """One line per trial of the plan (and each seed ``--until-decided`` added to it): recorded,
    or what the scheduler and the heartbeat say of it; then the counts and what was left out."""
    import pandas as pd

    from analysis.data import MISSING, load
    from prernn.tasks import TASKS

    store = Store(results, spec.task)
    if not is_store(results):
        from launch.launcher import LAUNCHER_FILE

        if (results / LAUNCHER_FILE).exists():  # it has not made the store yet (pre-training)
            console.print(f"{spec.name}: a launcher is starting in {results}; {len(trials)} trials pending")
            return 0
        try:
            store.require()
        except NoStore as e:
            print(f"error: {e} ({len(trials)} trials planned: run the sweep first)", file=sys.stderr)
            return 2
    data = load(results, spec.task, trials, spec.profile)
    queued = held(spec, results)
    metric = TASKS[spec.task].primary
    table = Table(title=f"{spec.name} [{spec.profile} profile] in {results}")
    for col in ("id", "trial", "seed", "status", "epochs", metric):
        table.add_column(col)
    counts: dict[str, int] = {}
    order = {t.id: i for i, t in enumerate(trials)}
    rows = data.trials.assign(_order=data.trials.id.map(order).fillna(len(order))).sort_values(["_order", "seed"])
    for _, r in rows.iterrows():
        if r.status != MISSING:
            state, epochs, value = r.status, str(r.epochs_done), "" if pd.isna(r[metric]) else f"{r[metric]:.4f}"
        else:
            done = _epochs_done(store, r.id)
            scheduler = queued[r.id].state if r.id in queued else None  # the scheduler's own word
            state = scheduler
            if scheduler in (None, Status.RUNNING):  # the heartbeat tells running from lost
                state = store.run_state(r.id, lost_after) or scheduler or ("started" if done else "pending")
            epochs, value = str(done), ""
        counts[state] = counts.get(state, 0) + 1
        table.add_row(r.id, r.label, str(r.seed), state, epochs, value)
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if data.left_out_note():
        console.print(data.left_out_note())
    return 0


def cancel(spec, results: Path, console: Console) -> int:
    """Stop the sweep wherever it runs: the launcher holding its store (local, Ray, a SLURM
    ``--wait``) cancels its running trials and starts no more; the jobs a scheduler holds are cancelled."""
    from launch.backends import all_backends
    from launch.launcher import request_cancel

    done = []
    for backend in all_backends(spec):
        try:
            what = backend.cancel_trials(results, backend.active_trials(results))
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"error: cannot cancel the {backend.name} backend's jobs ({e})", file=sys.stderr)
            return 1
        if what:
            done.append(what)
    try:  # after the scheduler's: a launcher following SLURM jobs ends once they have
        done += [what for what in [request_cancel(results)] if what]
    except TimeoutError as e:  # not running trials yet: it will stop before it does
        console.print(f"{spec.name}: cancel requested: {e}")
        return 0
    if not done:
        console.print(f"{spec.name}: no launcher, queued or running jobs in {results}")
        return 0
    console.print(f"{spec.name}: cancelled {'; '.join(done)}")
    return 0


def report(spec, trials, results: Path, output: Path | None, console: Console) -> int:
    from analysis.report import write

    if not (results / "trials").is_dir():
        print(f"error: no results in {results} (run the sweep first, or pass --results-dir)", file=sys.stderr)
        return 2
    target = output or results / "report.html"
    try:
        out = write(spec, trials, results, target)
    except OSError as e:
        print(f"error: cannot write the report to {target}: {e.strerror or e}; give --output a writable path",
              file=sys.stderr)
        return 2
    console.print(f"{spec.name}: report written to {out}")
    return 0


def _epochs_done(store, trial_id: str) -> int:
    import pyarrow.parquet as pq

    path = store.epochs_dir / f"{trial_id}.parquet"
    return pq.read_metadata(path).num_rows if path.is_file() else 0
