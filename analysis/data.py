"""A sweep's results as data frames: every expected trial, aggregated over seeds.

The store is plain Parquet, one file per trial, so any engine reads it:

    pyarrow.parquet.read_table("results/table1/trials")
    pandas.read_parquet("results/table1/trials")
    polars.read_parquet("results/table1/trials/*.parquet")
    duckdb.sql("select * from 'results/table1/trials/*.parquet'")

``trials`` joins the store onto the trials the spec expects, so a trial that never
ran is a row with status ``missing`` rather than absent. ``aggregate`` groups by
any config columns (``model.cell``, ``train.lr``, ...) and gives n, mean, std and
a 95% confidence interval (Student's t over seeds) of a metric over completed trials.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from records import BAD, Status, Store, flatten

MISSING = Status.MISSING  # expected by the spec, no row in the store


def load_trials(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    """The store's trials table (one row per recorded trial), in the store's schema."""
    return Store(sweep_dir, task).trials().to_pandas()


def load_epochs(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    """The store's per-epoch table (one row per finished epoch of each trial)."""
    return Store(sweep_dir, task).epochs().to_pandas()


def trials(sweep_dir: str | Path, task: str, expected=None) -> pd.DataFrame:
    """Recorded trials, plus a ``missing`` row for every expected trial (``launch.expand.Trial``s, or anything with id, label, config)
    that has none; config columns of missing rows come from the expected config."""
    df = load_trials(sweep_dir, task)
    have = set(df.id)
    rows = [{"id": t.id, "label": t.label, "status": MISSING, **flatten(t.config)}
            for t in expected or () if t.id not in have]
    return pd.concat([df, pd.DataFrame(rows, columns=df.columns)], ignore_index=True) if rows else df


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
