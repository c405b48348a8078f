"""Figures: pure functions from the store's frames to plain figure data (tested directly),
and thin plotly renderers of that data.

  hidden_size_data / hidden_size      Table 1: traditional hidden size vs metric per cell (log x,
                                      95% CI bars), each cell's PreRNN value as a dashed line
  bars_data / bars                    Tables 2-3: grouped bars per layout column, CI error bars,
                                      the paper's values as markers
  curves_data / curves                learning curves from the per-epoch table
  timeline_data / timeline            which worker ran which trial when
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import aggregate
from .tables import CELL_NAMES

COLOURS = {"VRNN": "#1f77b4", "LSTM": "#ff7f0e", "GRU": "#2ca02c"}


def _half(agg: pd.DataFrame) -> np.ndarray:
    """Half-width of the 95% CI; 0 where it is unknown (one seed)."""
    return ((agg.ci_high - agg.ci_low) / 2).fillna(0).to_numpy()


def hidden_size_data(trials: pd.DataFrame, metric: str) -> list[dict]:
    """Per cell: traditional (non-matched) hidden sizes, mean and CI half-width; the PreRNN mean."""
    trad = trials[(trials["model.model"] == "traditional") & ~trials["model.matched"].fillna(False).astype(bool)]
    trad = trad.assign(h=trad["model.hidden_dim"].astype(int))
    sizes = aggregate(trad, ["model.cell", "h"], metric)
    pre = aggregate(trials[trials["model.model"] == "prernn"], ["model.cell"], metric).set_index("model.cell")
    out = []
    for cell, name in CELL_NAMES.items():
        s = sizes[(sizes["model.cell"] == cell) & (sizes.n > 0)].sort_values("h")
        if not len(s) and cell not in pre.index:
            continue
        out.append({"cell": name, "x": s.h.tolist(), "y": s["mean"].tolist(), "error": _half(s).tolist(),
                    "prernn": float(pre.loc[cell, "mean"]) if cell in pre.index else None})
    return out


def bars_data(long: pd.DataFrame) -> list[dict]:
    """From a long table (``analysis.tables.table``): one bar series per cell (row)."""
    out = []
    for row, g in long.groupby("row", sort=False):
        out.append({"cell": row, "x": g.column.tolist(), "y": g["mean"].tolist(), "error": _half(g).tolist(),
                    "paper": g.paper.tolist(), "status": g.status.tolist()})
    return out


def curves_data(epochs: pd.DataFrame, trials: pd.DataFrame, metric: str) -> list[dict]:
    """One curve per trial with epochs: its label, epochs and the metric (and training loss)."""
    if not len(epochs) or metric not in epochs:
        return []
    labels = trials.set_index("id").label.to_dict() if len(trials) else {}
    out = []
    for tid, g in epochs.sort_values("epoch").groupby("id", sort=True):
        g = g[g[metric].notna()]  # epochs between evaluations (train.eval_every) have no metric
        out.append({"id": tid, "label": labels.get(tid, tid), "epoch": g.epoch.tolist(), "y": g[metric].tolist(),
                    "train_loss": g.train_loss.tolist()})
    return sorted(out, key=lambda c: c["label"])


def timeline_data(trials: pd.DataFrame) -> list[dict]:
    """Trials that ran: worker (lane), start, finish, label, status."""
    if not len(trials) or "started_at" not in trials:
        return []
    ran = trials.dropna(subset=["started_at", "finished_at"]).sort_values("started_at")
    return [{"worker": f"{r.host} {r.worker}" if pd.notna(r.worker) else str(r.host), "start": r.started_at,
             "finish": r.finished_at, "label": r.label, "status": r.status} for _, r in ran.iterrows()]


# ---------------------------------------------------------------- plotly renderers


def hidden_size(data: list[dict], metric: str, title: str = ""):
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in data:
        colour = COLOURS.get(d["cell"])
        fig.add_trace(go.Scatter(x=d["x"], y=d["y"], error_y={"type": "data", "array": d["error"]},
                                 mode="lines+markers", name=f"{d['cell']} traditional", line={"color": colour}))
        if d["prernn"] is not None and d["x"]:
            fig.add_trace(go.Scatter(x=[min(d["x"]), max(d["x"])], y=[d["prernn"]] * 2, mode="lines",
                                     name=f"{d['cell']} PreRNN", line={"color": colour, "dash": "dash"}))
    fig.update_layout(title=title or f"Hidden size vs {metric}", xaxis={"type": "log", "title": "hidden size"},
                      yaxis={"title": metric}, template="plotly_white")
    return fig


def bars(data: list[dict], metric: str, title: str = ""):
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in data:
        colour = COLOURS.get(d["cell"])
        fig.add_trace(go.Bar(x=d["x"], y=d["y"], error_y={"type": "data", "array": d["error"]}, name=d["cell"],
                             marker_color=colour))
        fig.add_trace(go.Scatter(x=d["x"], y=d["paper"], mode="markers", name=f"{d['cell']} (paper)",
                                 marker={"symbol": "x", "color": colour, "size": 9}))
    fig.update_layout(title=title, barmode="group", yaxis={"title": metric}, template="plotly_white")
    return fig


def curves(data: list[dict], metric: str, title: str = ""):
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in data:
        fig.add_trace(go.Scatter(x=d["epoch"], y=d["y"], mode="lines", name=d["label"]))
    fig.update_layout(title=title or f"Learning curves: {metric} per epoch", xaxis={"title": "epoch"},
                      yaxis={"title": metric}, template="plotly_white")
    return fig


def timeline(data: list[dict], title: str = "Trial timeline"):
    import plotly.graph_objects as go

    fig = go.Figure()
    for status, colour in (("completed", "#2ca02c"), ("pruned", "#9467bd"), ("failed", "#d62728"),
                           ("diverged", "#8c564b")):
        rows = [d for d in data if d["status"] == status]
        if not rows:
            continue
        fig.add_trace(go.Bar(
            base=[d["start"] for d in rows], x=[(d["finish"] - d["start"]).total_seconds() * 1000 for d in rows],
            y=[d["worker"] for d in rows], orientation="h", name=status, marker_color=colour,
            text=[d["label"] for d in rows], textposition="none", hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis={"type": "date", "title": "time"}, barmode="overlay", template="plotly_white")
    return fig
