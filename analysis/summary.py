"""The end-of-run summary: our values beside the paper's, in the paper's table layout.

Ours are means over seeds of the task's primary metric. The mini profile's
hidden sizes are scaled down; its columns are matched to the paper's by rank
(smallest to smallest), and the header says both sizes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE = Path(__file__).parent / "reference"
CELL_NAMES = {"vrnn": "VRNN", "lstm": "LSTM", "gru": "GRU"}


def reference(table: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / f"{table}.csv", dtype=str, keep_default_na=False)


def _fmt(ours: float | None, paper: str | None, n: int) -> str:
    o = "—" if ours is None or pd.isna(ours) else f"{ours:.4f}"
    if n > 1:
        o += f" (n={n})"
    return f"{o} | {paper}" if paper else o


def _cell(done: pd.DataFrame, mask, metric: str) -> tuple[float | None, int]:
    sel = done[mask]
    return (sel[metric].mean() if len(sel) else None), len(sel)


def table1(trials: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    ref = reference("table1")
    done = trials[trials.status == "completed"]
    trad = trials[(trials["model.model"] == "traditional") & ~trials["model.matched"].astype(bool)]
    sizes = sorted({int(h) for h in trad["model.hidden_dim"]})
    paper_sizes = sorted({int(h) for h, m in zip(ref.hidden_dim, ref.model) if m == "traditional" and h.isdigit()})
    to_paper = {h: str(p) for h, p in zip(sizes, paper_sizes)}  # by rank: mini sizes are scaled down
    header = ["cell"] + [f"h={h} | paper h={to_paper.get(h, '?')}" for h in sizes] + ["matched | paper", "PreRNN | paper"]

    def paper(name, model, h):
        r = ref[(ref.cell == name) & (ref.model == model) & (ref.hidden_dim == h)]
        return r.testing_loss.iloc[0] if len(r) else None

    is_trad = done["model.model"] == "traditional"
    matched = done["model.matched"].astype(bool)
    rows = []
    for cell, name in CELL_NAMES.items():
        c = done["model.cell"] == cell
        row = [name]
        for h in sizes:
            ours, n = _cell(done, c & is_trad & ~matched & (done["model.hidden_dim"] == h), metric)
            row.append(_fmt(ours, paper(name, "traditional", to_paper.get(h)), n))
        ours, n = _cell(done, c & is_trad & matched, metric)
        row.append(_fmt(ours, paper(name, "traditional", "matched"), n))
        ours, n = _cell(done, c & ~is_trad, metric)
        row.append(_fmt(ours, paper(name, "prernn", "4096"), n))
        rows.append(row)
    return header, rows


def layer_label(layers_json: str, extra: int) -> str:
    import json

    layers = json.loads(layers_json)
    label = "fc6/7" if layers == ["fc6", "fc7"] else "/".join(layers)
    return label + ("+random" if extra else "")


def table2(trials: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    ref = reference("table2")
    done = trials[(trials.status == "completed") & (trials["model.model"] == "prernn")].copy()
    done["layers"] = [layer_label(l, e) for l, e in zip(done["model.layers"], done["model.extra_layers"])]
    columns = ["fc6", "fc7", "fc6/7", "fc6/7+random"]
    rows = []
    for cell, name in CELL_NAMES.items():
        row = [name]
        for col in columns:
            sel = done[(done["model.cell"] == cell) & (done.layers == col)]
            r = ref[(ref.cell == name) & (ref.layers == col)]
            row.append(_fmt(sel[metric].mean() if len(sel) else None, r.testing_loss.iloc[0] if len(r) else None, len(sel)))
        rows.append(row)
    return ["cell"] + [f"{c} | paper" for c in columns], rows


def table3(trials: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    """Cells x (PreRNN, PreRNN-SIH) x input init, plus traditional; VRNN has no SIH ("n/a")."""
    ref = reference("table3")
    done = trials[trials.status == "completed"]
    columns = [("prernn", "gate", "pretrained"), ("prernn", "gate", "random"),
               ("prernn-sih", "sih", "pretrained"), ("prernn-sih", "sih", "random"), ("traditional", None, "")]
    header = ["cell"] + [f"{m} {i} | paper".replace("  ", " ") for m, _, i in columns]
    rows = []
    for cell, name in CELL_NAMES.items():
        row = [name]
        for model, variant, init in columns:
            r = ref[(ref.cell == name) & (ref.model == model) & (ref.input_init == init)]
            c = done["model.cell"] == cell
            if variant is None:
                sel = done[c & (done["model.model"] == "traditional")]
            else:
                sel = done[c & (done["model.model"] == "prernn") & (done["model.variant"] == variant)
                           & (done["model.input_init"] == init)]
            if variant == "sih" and cell == "vrnn":
                row.append("n/a")
                continue
            row.append(_fmt(sel[metric].mean() if len(sel) else None, r.accuracy.iloc[0] if len(r) else None,
                            len(sel)))
        rows.append(row)
    return header, rows


LAYOUTS = {"table1": table1, "table2": table2, "table3": table3}


def summary(trials: pd.DataFrame, reference_table: str | None, metric: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the summary; a plain per-trial listing without a paper layout."""
    if reference_table in LAYOUTS and len(trials):
        return LAYOUTS[reference_table](trials, metric)
    rows = [[r.label, r.status, "—" if pd.isna(r[metric]) else f"{r[metric]:.4f}"]
            for _, r in trials.sort_values("label").iterrows()]
    return ["trial", "status", metric], rows
