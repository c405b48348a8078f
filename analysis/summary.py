"""The end-of-run summary: the paper's table layout (``analysis.tables``) as rows of text,
or a per-trial listing for sweeps without a paper table."""

from __future__ import annotations

import pandas as pd

from .tables import LAYOUTS, table, wide


def summary(trials: pd.DataFrame, reference_table: str | None, metric: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): ours | the paper's per cell, or trial / status / metric per trial."""
    if reference_table in LAYOUTS and len(trials):
        w = wide(table(trials, reference_table, metric))
        header = ["cell"] + [f"{c} | paper" for c in w.columns]
        return header, [[row, *values] for row, values in zip(w.index, w.fillna("—").values.tolist())]
    rows = [[r.label, r.status, "—" if pd.isna(r[metric]) else f"{r[metric]:.4f}"]
            for _, r in trials.sort_values("label").iterrows()]
    return ["trial", "status", metric], rows
