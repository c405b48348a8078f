"""The paper's Tables 1-3 from a sweep: ours (mean, 95% CI, n seeds), the paper's value, the difference.

A table is long-form - one row per (row, column) cell of the paper's layout - so it
can be pivoted, plotted or rendered; ``wide`` gives the paper's shape as text.
Every cell the layout has is present: with no completed trial its status says
why (``failed``: only failed/diverged trials; ``missing``: never run).

A cell is one configuration with its seeds. Trials the layout puts in one cell but that
differ in another field (an axis the paper's table has no place for, e.g. ``--set
'grid.1.train.lr=[0.05,0.1]'``) are never averaged: each configuration becomes its own
column, named by the layout's column and the fields that tell them apart
(``PreRNN [train.lr=0.05]``), with the paper's value of the layout's column.

Every table also has reference rows (``references``: a constant predictor, a linear
probe, the per-frame CNN) and says which models do not beat the constant
(``not_beating_constant``).

Layouts (the paper's; ``analysis/reference`` holds its values):
  table1  cell x traditional hidden size (and parameter-matched), plus PreRNN (fc6/7).
          A mini profile's sizes are scaled down: they are matched to the paper's by rank.
  table2  cell x transformed layers: fc6, fc7, fc6/7, fc6/7 + random.
  table3  cell x (PreRNN, PreRNN-SIH) x input init, plus traditional; VRNN has no SIH (n/a).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from records import PAPER_TABLES, Status
from records.store import identifying_columns

from .data import plain, aggregate

REFERENCE = Path(__file__).parent / "reference"
CELL_NAMES = {"vrnn": "VRNN", "lstm": "LSTM", "gru": "GRU"}
NOT_APPLICABLE = "n/a"


def reference(table: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / f"{table}.csv", dtype=str, keep_default_na=False)


def _traditional(df):
    return df["model.model"] == "traditional"


def _layers(layers_json: str, extra) -> str:
    layers = json.loads(layers_json) if isinstance(layers_json, str) else list(layers_json)
    return ("fc6/7" if layers == ["fc6", "fc7"] else "/".join(layers)) + ("+random" if extra else "")


def _columns_table1(df: pd.DataFrame) -> pd.Series:
    trad, matched = _traditional(df), df["model.matched"].fillna(False).astype(bool)
    sizes = sorted({int(h) for h in df.loc[trad & ~matched, "model.hidden_dim"]})
    paper = sorted(int(h) for h in reference("table1").hidden_dim.unique() if h.isdigit())
    to_paper = dict(zip(sizes, paper))  # by rank: mini sizes are scaled down
    col = pd.Series("PreRNN", index=df.index)
    col[trad & matched] = "matched"
    col[trad & ~matched] = [f"h={int(h)}" if to_paper.get(int(h)) in (None, int(h)) else
                            f"h={int(h)} (paper {to_paper[int(h)]})" for h in df.loc[trad & ~matched, "model.hidden_dim"]]
    return col


def _paper_table1(ref: pd.DataFrame, cell: str, column: str):
    if column == "PreRNN":
        key = ("prernn", "4096")
    elif column == "matched":
        key = ("traditional", "matched")
    else:
        key = ("traditional", column.split("paper ")[-1].rstrip(")").removeprefix("h="))
    r = ref[(ref.cell == cell) & (ref.model == key[0]) & (ref.hidden_dim == key[1])]
    return float(r.testing_loss.iloc[0]) if len(r) else np.nan


def _columns_table2(df):
    return pd.Series([_layers(l, e) for l, e in zip(df["model.layers"], df["model.extra_layers"])], index=df.index)


def _paper_table2(ref, cell, column):
    r = ref[(ref.cell == cell) & (ref.layers == column)]
    return float(r.testing_loss.iloc[0]) if len(r) else np.nan


def _columns_table3(df):
    trad = _traditional(df)
    sih = df["model.variant"] == "sih"
    col = ("prernn" + np.where(sih, "-sih", "") + " " + df["model.input_init"].fillna("")).str.strip()
    return col.where(~trad, "traditional")


def _paper_table3(ref, cell, column):
    model, _, init = column.partition(" ")
    r = ref[(ref.cell == cell) & (ref.model == model) & (ref.input_init == init)]
    return float(r.accuracy.iloc[0]) if len(r) else np.nan


LAYOUTS = {
    "table1": (_columns_table1, _paper_table1, None),
    "table2": (_columns_table2, _paper_table2, ["fc6", "fc7", "fc6/7", "fc6/7+random"]),
    "table3": (_columns_table3, _paper_table3, ["prernn pretrained", "prernn random", "prernn-sih pretrained",
                                                "prernn-sih random", "traditional"]),
}
if tuple(LAYOUTS) != PAPER_TABLES:  # a spec's `reference:` takes records.PAPER_TABLES
    raise RuntimeError(f"analysis.tables.LAYOUTS lays out {tuple(LAYOUTS)}, records.PAPER_TABLES names {PAPER_TABLES}")


def _order_table1(columns) -> list[str]:
    sizes = sorted((c for c in columns if c.startswith("h=")), key=lambda c: int(c[2:].split()[0]))
    return sizes + [c for c in ("matched", "PreRNN") if c in columns]


def cells(trials: pd.DataFrame, name: str) -> pd.DataFrame:
    """The trials of the table's cells, with their ``row`` (cell type), ``layout`` (the paper's
    column) and ``column`` (the layout's, or one per configuration where a cell holds several)."""
    columns_of = LAYOUTS[name][0]
    df = trials[trials["model.cell"].isin(CELL_NAMES)].copy()
    df["row"] = df["model.cell"].map(CELL_NAMES)
    df["layout"] = columns_of(df) if len(df) else pd.Series(dtype=str)
    df["column"] = df["layout"] + _configurations(df)
    return df


def _configurations(df: pd.DataFrame) -> pd.Series:
    """' [train.lr=0.05]' for each trial of a cell that holds several configurations (arms):
    the fields, seed aside, in which that cell's configurations differ; '' elsewhere."""
    out = pd.Series("", index=df.index, dtype=object)
    if "arm" not in df or not len(df):
        return out
    fields = [c for c in identifying_columns() if c != "seed" and c in df]
    for _, g in df.groupby(["row", "layout"], sort=False):
        if g.arm.nunique() < 2:
            continue
        values = g[fields].map(plain)
        differ = [c for c in fields if values[c].nunique() > 1]
        out[g.index] = [" [" + ", ".join(f"{c}={v}" for c, v in zip(differ, row)) + "]"
                        for row in values[differ].itertuples(index=False)]
    return out


def cell_values(trials: pd.DataFrame, name: str, metric: str) -> pd.DataFrame:
    """Every completed seed's value per cell: row, column, seed, value."""
    df = cells(trials, name)
    df = df[df.status == Status.COMPLETED]
    return pd.DataFrame({"row": df.row, "column": df.column, "seed": df.seed, "value": df[metric]})


def table(trials: pd.DataFrame, name: str, metric: str) -> pd.DataFrame:
    """Long form: row (cell), column, layout (the paper's column), n, mean, std, ci_low, ci_high,
    failed, missing, paper, diff, status."""
    _, paper_of, order = LAYOUTS[name]
    ref = reference(name)
    df = cells(trials, name)
    agg = aggregate(df, ["row", "column"], metric)
    layouts = order or _order_table1(set(df["layout"]))
    variants = {lay: sorted(set(df.column[df.layout == lay])) or [lay] for lay in layouts}
    grid = pd.DataFrame([(r, c, lay) for r in CELL_NAMES.values() for lay in layouts for c in variants[lay]],
                        columns=["row", "column", "layout"])
    out = grid.merge(agg, on=["row", "column"], how="left")
    out[["n", "failed", "missing"]] = out[["n", "failed", "missing"]].fillna(0).astype(int)
    out["paper"] = [paper_of(ref, r, lay) for r, lay in zip(out.row, out.layout)]
    out["diff"] = out["mean"] - out["paper"]
    na = (out.row == "VRNN") & out.column.str.startswith("prernn-sih") if name == "table3" else False
    out["status"] = np.select([na, out.n > 0, out.failed > 0], [NOT_APPLICABLE, "ok", "failed"], "missing")
    return out


# reference rows (prernn.train.reference), in every table beside the paper's
REFERENCE_ROWS = {"constant": "constant", "probe": "linear probe", "per-frame": "per-frame CNN"}


def references(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Long form of the reference rows the sweep has: row 'reference', column = their name."""
    df = trials[trials["model.model"].isin(REFERENCE_ROWS)] if len(trials) else trials
    if not len(df):
        return pd.DataFrame(columns=["row", "column", "n", "mean", "std", "ci_low", "ci_high", "failed", "missing",
                                     "status", "layout"])
    df = df.assign(row="reference", layout=df["model.model"].map(REFERENCE_ROWS))
    df["column"] = df.layout + _configurations(df)  # one row per configuration, never pooled
    out = aggregate(df, ["row", "layout", "column"], metric)
    out["status"] = np.select([out.n > 0, out.failed > 0], ["ok", "failed"], "missing")
    rank = {name: i for i, name in enumerate(REFERENCE_ROWS.values())}
    out = out.sort_values(["layout", "column"], key=lambda c: c.map(rank) if c.name == "layout" else c)
    return out[["row", "column", *out.columns.drop(["row", "column", "layout"]), "layout"]].reset_index(drop=True)


def not_beating_constant(cells: pd.DataFrame, refs: pd.DataFrame, mode: str) -> list[str]:
    """'row column' of every cell (and reference) whose mean is not better than the constant's
    (the best constant, where there are several): a model there has learned nothing the
    training set's mean did not already say."""
    const = refs[(refs.layout == "constant") & (refs.status == "ok")] if len(refs) else refs
    if not len(const):
        return []
    c = float(const["mean"].min() if mode == "min" else const["mean"].max())
    rows = pd.concat([cells, refs[refs.layout != "constant"]], ignore_index=True)
    rows = rows[rows.status == "ok"]
    worse = rows["mean"] >= c if mode == "min" else rows["mean"] <= c
    return [f"{r} {col}".replace("reference ", "") for r, col in zip(rows.row[worse], rows.column[worse])]


def reference_text(refs: pd.DataFrame, digits: int = 4) -> str:
    """'constant 0.0349 (n=3), linear probe 0.0210 (n=3), ...'."""
    parts = []
    for _, r in refs.iterrows():
        value = "failed" if r.status == "failed" else "—" if r.status != "ok" else f"{r['mean']:.{digits}f}"
        if r.status == "ok" and r.n > 1 and pd.notna(r.ci_high) and r.ci_high > r.ci_low:
            value += f" ±{(r.ci_high - r.ci_low) / 2:.{digits}f}"
        parts.append(f"{r.column} {value}" + (f" (n={r.n})" if r.status == "ok" else ""))
    return ", ".join(parts)


def cell_text(r, digits: int = 4, diff: bool = True) -> str:
    """'0.1234 ±0.0100 (n=3) | 0.0819 (Δ +0.0415)': ours (± the 95% CI half-width when n > 1),
    the paper's value, ours minus the paper's (only with ``diff``: on the paper's profile)."""
    if r.status == NOT_APPLICABLE:
        return NOT_APPLICABLE
    if r.status == "ok":
        ours = f"{r['mean']:.{digits}f}"
        if r.n > 1:
            ours += f" ±{(r.ci_high - r.ci_low) / 2:.{digits}f} (n={r.n})"
        if r.failed:
            ours += f" +{r.failed} failed"
    else:
        ours = "failed" if r.status == "failed" else "—"
    paper = f" | {r.paper:g}" if pd.notna(r.paper) else ""
    return ours + paper + (f" (Δ {r['diff']:+.{digits}f})" if diff and pd.notna(r["diff"]) else "")


def wide(long: pd.DataFrame, diff: bool = True) -> pd.DataFrame:
    """The paper's shape: one row per cell, one column per layout column, 'ours | paper' text
    (and the difference with ``diff``, meaningful on the paper's profile only)."""
    text = long.assign(text=[cell_text(r, diff=diff) for _, r in long.iterrows()])
    out = text.pivot(index="row", columns="column", values="text").rename_axis(index=None, columns=None)
    return out.loc[[c for c in CELL_NAMES.values() if c in out.index], list(dict.fromkeys(long.column))]
