"""The end-of-run summary: the paper's table layout (``analysis.tables``) as rows of text,
or a per-trial listing for sweeps without a paper table."""

from __future__ import annotations

import pandas as pd

from .tables import LAYOUTS, not_beating_constant, reference_text, references, table, wide


def summary(trials: pd.DataFrame, reference_table: str | None, metric: str,
            mode: str = "min") -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes): ours | the paper's per cell, or trial / status / metric per trial;
    notes: the reference rows, and a warning naming every model that does not beat the constant."""
    refs = references(trials, metric)
    notes = [f"reference rows: {reference_text(refs)}"] if len(refs) else []
    if reference_table in LAYOUTS and len(trials):
        long = table(trials, reference_table, metric)
        w = wide(long)
        header = ["cell"] + [f"{c} | paper" for c in w.columns]
        rows = [[row, *values] for row, values in zip(w.index, w.fillna("—").values.tolist())]
    else:
        long = pd.DataFrame(columns=["row", "column", "mean", "status"])
        rows = [[r.label, r.status, "—" if pd.isna(r[metric]) else f"{r[metric]:.4f}"]
                for _, r in trials.sort_values("label").iterrows()]
        header = ["trial", "status", metric]
    worse = not_beating_constant(long, refs, mode)
    if worse:
        notes.append(f"WARNING: {len(worse)} model(s) do not beat the constant predictor - they learned nothing the "
                     f"training set's mean did not already say: {', '.join(worse)}")
    return header, rows, notes
