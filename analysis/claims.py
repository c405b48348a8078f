"""The paper's claims as data, tested over seeds: which variant is better, by how much, how sure.

A claim is a directed comparison between two arms: "the *better* arm has a better
metric than the *worse* arm" (lower loss, higher accuracy), written ``better > worse``. The paper's claims are
comparisons between two cells of a table (row, column), derived from the layouts:

  table1  per cell type: PreRNN beats the traditional RNN of every hidden size and
          of the matched size (18 claims)
  table2  per cell type: PreRNN with fc6, fc7 and fc6/7 transformed beats fc6/7 plus
          a random recurrent layer (9 claims)
  table3  per cell type: PreRNN with pre-trained input-to-hidden weights beats PreRNN
          with random ones, which beats the traditional RNN; the same for PreRNN-SIH
          where it exists (10 claims)

A sweep declares its own claims in its spec (``claims:``): each a ``better`` and a
``worse`` selector of grid-axis values (``{model: prernn, cell: lstm}``), each matching
the trials whose resolved config has those values. Every claim of one table (or of the
spec) is one family: their p-values are Holm-adjusted together, and each gets a
verdict (``analysis.stats``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from records import Status

from . import stats
from .tables import CELL_NAMES

TRADITIONAL_PREFIX = "h="
FEW_SEEDS = "fewer than 2 completed seeds in an arm"
NO_SPREAD = "no spread: every seed differs by the same amount, nothing to test the difference against"


@dataclass(frozen=True)
class Claim:
    name: str  # what is claimed, in words
    better: dict  # selector of the claimed-better arm: column -> value (table cells: row, column)
    worse: dict


def paper_claims(table: str, long: pd.DataFrame) -> list[Claim]:
    """The paper's claims about ``table``, over the cells its long form has."""
    rows = [r for r in CELL_NAMES.values() if r in set(long.row)]
    columns = list(dict.fromkeys(long.column))
    out = []
    for row in rows:
        def claim(better: str, worse: str):
            out.append(Claim(f"{row} {short_column(better)} > {short_column(worse)}", {"row": row, "column": better},
                             {"row": row, "column": worse}))
        if table == "table1":
            for c in columns:
                if c != "PreRNN":
                    claim("PreRNN", c)
        elif table == "table2":
            for c in ("fc6", "fc7", "fc6/7"):
                claim(c, "fc6/7+random")
        elif table == "table3":
            variants = ["prernn"] + (["prernn-sih"] if row != "VRNN" else [])
            for v in variants:
                claim(f"{v} pretrained", f"{v} random")
                claim(f"{v} random", "traditional")
    return out


SHORT = {"prernn pretrained": "PreRNN pre", "prernn random": "PreRNN rand", "prernn-sih pretrained": "SIH pre",
         "prernn-sih random": "SIH rand"}


def short_column(column: str) -> str:
    """A layout column as a claim names it: 'h=8 (paper 256)' -> 'h=8' (our cells), Table 3's
    'prernn-sih pretrained' -> 'SIH pre' (80 columns)."""
    return SHORT.get(column, column.split(" (paper")[0])


def spec_claims(spec) -> list[Claim]:
    """The claims a spec declares (``claims:``), with their selectors as config columns."""
    out = []
    for c in getattr(spec, "claims", None) or ():
        out.append(Claim(c.name or f"{_words(c.better)} beats {_words(c.worse)}", _columns(c.better),
                         _columns(c.worse)))
    return out


def _words(selector: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in selector.items())


def _columns(selector: dict) -> dict:
    """Grid-axis names to store columns: model fields live under 'model.'."""
    out = {}
    for k, v in selector.items():
        col = k if k in ("seed",) or "." in k else f"model.{k}"
        out[col] = json.dumps(v) if isinstance(v, list) else v
    return out


def arm(df: pd.DataFrame, selector: dict, metric: str) -> dict:
    """seed -> the arm's metric (the mean over its trials of that seed), completed trials only."""
    mask = df.status == Status.COMPLETED
    for col, value in selector.items():
        if col == "model.hidden_dim" and value == "matched":
            mask &= df["model.matched"].fillna(False).astype(bool)
        else:
            mask &= df[col] == value
    sub = df[mask]
    return sub.groupby("seed")[metric].mean().to_dict() if len(sub) else {}


def test(claims: list[Claim], df: pd.DataFrame, metric: str, mode: str, seed: int = 0) -> pd.DataFrame:
    """One row per claim: n, improvement with its t and bootstrap intervals, effect sizes,
    p (raw and Holm-adjusted within ``claims``), verdict, seeds needed. ``df`` holds the
    trials, with ``row`` and ``column`` for table cells."""
    rows = []
    for c in claims:
        cmp = stats.compare(arm(df, c.better, metric), arm(df, c.worse, metric), mode, seed)
        rows.append((c, cmp))
    tested = [i for i, (_, cmp) in enumerate(rows) if cmp is not None and not np.isnan(cmp.p)]
    adjusted = dict(zip(tested, stats.holm([rows[i][1].p for i in tested]))) if tested else {}
    out = []
    for i, (c, cmp) in enumerate(rows):
        p_holm = adjusted.get(i)
        base = {"claim": c.name, "verdict": stats.verdict(cmp, p_holm), "p_holm": p_holm}
        if cmp is None:
            out.append({**base, "n": min(len(arm(df, c.better, metric)), len(arm(df, c.worse, metric))),
                        "why": FEW_SEEDS})
            continue
        out.append({**base, "n": cmp.n, "paired": cmp.paired, "improvement": cmp.improvement,
                    "t_low": cmp.t_low, "t_high": cmp.t_high, "boot_low": cmp.boot_low, "boot_high": cmp.boot_high,
                    "hedges_g": cmp.hedges_g, "p_superior": cmp.p_superior, "p": cmp.p,
                    "seeds_needed": cmp.seeds_needed,
                    "why": NO_SPREAD if np.isnan(cmp.p) else None})
    return pd.DataFrame(out, columns=["claim", "n", "paired", "improvement", "t_low", "t_high", "boot_low",
                                      "boot_high", "hedges_g", "p_superior", "p", "p_holm", "verdict",
                                      "seeds_needed", "why"])


def table_claims(trials: pd.DataFrame, table: str, metric: str, mode: str) -> pd.DataFrame:
    """The paper's claims about ``table`` tested on a sweep's trials."""
    from .tables import cells, table as long_table

    return test(paper_claims(table, long_table(trials, table, metric)), cells(trials, table), metric, mode)
