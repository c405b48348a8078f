"""A sweep's results as data frames: exactly the spec's trials, aggregated over seeds.

The store is plain Parquet, one file per trial, so any engine reads it:

    pyarrow.parquet.read_table("results/table1/mini/trials")
    pandas.read_parquet("results/table1/mini/trials")
    polars.read_parquet("results/table1/mini/trials/*.parquet")
    duckdb.sql("select * from 'results/table1/mini/trials/*.parquet'")

``load`` takes the trials a spec expands to now (profile and overrides applied: a plan),
and the seeds ``--until-decided`` added to that plan, from a store that may hold other
trials too (other profiles, other ``--set`` values, earlier versions of the spec): those
are left out, counted by why. A trial of the plan that never ran is a row with status
``missing`` rather than absent; every row carries its ``arm`` (``records.arm_id``: the
configuration, seed aside). ``aggregate`` groups by
any config columns (``model.cell``, ``train.lr``, ...) and gives n, mean, std and
a 95% confidence interval (Student's t over seeds) of a metric over completed trials.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from records import BAD, Status, Store, arm_id, flatten, plan_id
from records.store import identifying_columns

MISSING = Status.MISSING  # expected by the spec, no row in the store


@dataclass
class SweepData:
    """A plan's trials in a store, and what the store holds besides."""

    trials: pd.DataFrame  # recorded rows of the plan, plus a 'missing' row per trial that has none; 'arm' column
    left_out: dict[str, int] = field(default_factory=dict)  # why other rows were left out -> how many
    seeding: dict | None = None  # the --until-decided record: the claims were tested sequentially

    def left_out_note(self) -> str | None:
        if not self.left_out:
            return None
        n = sum(self.left_out.values())
        why = ", ".join(f"{k} {w}" for w, k in sorted(self.left_out.items(), key=lambda kv: (-kv[1], kv[0])))
        return (f"left out {n} trial(s) of the store that are not this spec's (another profile, override or "
                f"version): {why}")


def load_trials(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    """The store's trials table (one row per recorded trial), in the store's schema."""
    return Store(sweep_dir, task).require().trials().to_pandas()


def load_epochs(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    """The store's per-epoch table (one row per finished epoch of each trial)."""
    return Store(sweep_dir, task).require().epochs().to_pandas()


def load(sweep_dir: str | Path, task: str, expected, profile: str | None = None) -> SweepData:
    """The plan ``expected`` (``launch.expand.Trial``s, or anything with id, label, config) in the
    store: its recorded rows and the seeds ``--until-decided`` added to it, a ``missing`` row for
    each of its trials without one (config columns from the expected config), and why the
    store's other rows were left out (``profile``: the plan's, to name another one)."""
    expected = list(expected)
    store = Store(sweep_dir, task).require()  # NoStore: a mistyped path is not a sweep with nothing run
    df = store.trials().to_pandas()
    seeding = store.seeding(plan_id(t.id for t in expected))
    arms = {t.id: arm_id(t.config) for t in expected} | (seeding or {}).get("trials", {})
    mine = df.id.isin(arms)
    left_out = why_left_out(df[~mine], expected, profile)
    df = df[mine]
    have = set(df.id)
    rows = [{"id": t.id, "label": t.label, "status": MISSING, **flatten(t.config)} for t in expected if t.id not in have]
    if rows:
        df = pd.concat([df, pd.DataFrame(rows, columns=df.columns)], ignore_index=True)
    return SweepData(df.assign(arm=df.id.map(arms)).reset_index(drop=True), left_out, seeding)


def trials(sweep_dir: str | Path, task: str, expected=None) -> pd.DataFrame:
    """The plan's trials (``load(...).trials``); without ``expected``, every recorded row."""
    return load_trials(sweep_dir, task) if expected is None else load(sweep_dir, task, expected).trials


def why_left_out(other: pd.DataFrame, expected, profile: str | None = None) -> dict[str, int]:
    """Why each row of ``other`` is not one of the plan's trials, counted: 'of profile paper',
    or the config fields in which it differs from the nearest trial of the plan ('with another
    train.lr'; 'with another seed': a seed the spec does not list)."""
    out: Counter = Counter()
    if not len(other):
        return {}
    if profile is not None:
        foreign = other.profile.notna() & (other.profile != profile)
        out.update(f"of profile {p}" for p in other.profile[foreign])
        other = other[~foreign]
    if not len(other) or not expected:
        out.update({"with another configuration": len(other)} if len(other) else {})
        return dict(out)
    cols = [c for c in identifying_columns() if c in other.columns]
    plan = pd.DataFrame([flatten(t.config) for t in expected]).reindex(columns=cols)
    codes = [pd.factorize(pd.concat([plan[c], other[c]], ignore_index=True).map(plain))[0] for c in cols]
    codes = np.stack(codes, axis=1)
    mine, theirs = codes[:len(plan)], codes[len(plan):]
    for start in range(0, len(theirs), 2000):  # rows x plan x columns, a block at a time
        diff = theirs[start:start + 2000, None, :] != mine[None, :, :]
        nearest = diff.sum(2).argmin(1)
        for i, j in enumerate(nearest):
            fields = [c for c, d in zip(cols, diff[i, j]) if d]
            out[f"with another {', '.join(fields)}" if fields else "recorded twice"] += 1
    return dict(out)


def plain(v):
    """A config value as one comparable text: NaN and None alike, 8.0 as 8."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "None"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def aggregate(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per group of ``by``: n completed, mean, std (ddof 1), 95% CI of ``metric``, and how many
    trials failed/diverged or are missing. Groups with no completed trial keep n = 0."""
    if not len(df):
        return pd.DataFrame(columns=[*by, "n", "mean", "std", "ci_low", "ci_high", "failed", "missing"])
    d = df.assign(_done=df.status == Status.COMPLETED, _failed=df.status.isin(BAD),
                  _missing=df.status == MISSING)
    d["_value"] = d[metric].where(d._done) if metric in d else np.nan
    g = d.groupby(by, dropna=False, sort=True)
    out = g.agg(n=("_done", "sum"), mean=("_value", "mean"), std=("_value", "std"),
                failed=("_failed", "sum"), missing=("_missing", "sum")).reset_index()
    half = [stats.t.ppf(0.975, n - 1) * s / np.sqrt(n) if n > 1 else np.nan for n, s in zip(out.n, out["std"])]
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out[[*by, "n", "mean", "std", "ci_low", "ci_high", "failed", "missing"]]
