"""Figures: pure functions from the store's frames to plain figure data (tested directly),
and thin plotly renderers of that data.

  hidden_size_data / hidden_size      Table 1: traditional hidden size vs metric per cell (log x,
                                      95% CI bars), each cell's PreRNN value as a dashed line
                                      (one line per configuration where a cell holds several)
  bars_data / bars                    Tables 1-3: grouped bars per layout column (the mean), 95% CI
                                      error bars, every seed's value as a point over them, the
                                      paper's values as markers (on their own axis on a miniature)
  curves_data / curves                learning curves: the seeds of one configuration as a band
                                      (their range) around their mean
  timeline_data / timeline            which worker ran which trial when

Each ``*_data`` returns an empty list when there is nothing to draw; the report then
leaves the figure out with a one-line note instead of drawing an empty plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from records import Status

from .data import aggregate
from .tables import CELL_NAMES, cells

COLOURS = {"VRNN": "#1f77b4", "LSTM": "#ff7f0e", "GRU": "#2ca02c"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def _half(agg: pd.DataFrame) -> np.ndarray:
    """Half-width of the 95% CI; 0 where it is unknown (one seed)."""
    return ((agg.ci_high - agg.ci_low) / 2).fillna(0).to_numpy()


def hidden_size_data(trials: pd.DataFrame, metric: str) -> list[dict]:
    """Per cell (per configuration, where a cell holds several: ``tables.cells``): traditional
    (non-matched) hidden sizes, mean and CI half-width; ``prernn``: the mean of each PreRNN
    configuration of that cell type, by its label."""
    df = cells(trials, "table1")
    df = df.assign(extra=df.column.str.extract(r"( \[.*\])$", expand=False).fillna(""))
    done = df[df.status == Status.COMPLETED]
    trad = done[(done["model.model"] == "traditional") & ~done["model.matched"].fillna(False).astype(bool)]
    if trad["model.hidden_dim"].nunique() < 2:  # no sizes to put on an axis
        return []
    trad = trad.assign(h=trad["model.hidden_dim"].astype(int))
    sizes = aggregate(trad, ["row", "extra", "h"], metric)
    pre = aggregate(done[done["model.model"] == "prernn"], ["row", "extra"], metric)
    out = []
    for row in CELL_NAMES.values():
        mine = pre[pre.row == row]
        lines = {f"{row} PreRNN{e}": float(m) for e, m in zip(mine.extra, mine["mean"])}
        for extra in sorted(set(sizes.extra[sizes.row == row])) or [""]:
            s = sizes[(sizes.row == row) & (sizes.extra == extra) & (sizes.n > 0)].sort_values("h")
            if not len(s) and not lines:
                continue
            out.append({"cell": row + extra, "x": s.h.tolist(), "y": s["mean"].tolist(),
                        "error": _half(s).tolist(), "prernn": lines})
    return out


def bars_data(long: pd.DataFrame, points: pd.DataFrame | None = None) -> list[dict]:
    """From a long table (``analysis.tables.table``): one bar series per cell (row); with
    ``points`` (``analysis.tables.cell_values``: row, column, seed, value) every seed's value."""
    if not len(long) or not (long.status == "ok").any():
        return []
    out = []
    for row, g in long.groupby("row", sort=False):
        seeds = [[] for _ in range(len(g))]
        if points is not None and len(points):
            mine = points[points.row == row]
            seeds = [mine[mine.column == c].value.tolist() for c in g.column]
        out.append({"cell": row, "x": g.column.tolist(), "y": g["mean"].tolist(), "error": _half(g).tolist(),
                    "points": seeds, "paper": g.paper.tolist(), "status": g.status.tolist()})
    return out


def curves_data(epochs: pd.DataFrame, trials: pd.DataFrame, metric: str) -> list[dict]:
    """One band per configuration (its trials' label, all seeds): per evaluated epoch the mean
    over seeds and their range, and how many seeds it covers."""
    if not len(epochs) or metric not in epochs or not len(trials):
        return []
    e = epochs[epochs[metric].notna()].merge(trials[["id", "label"]], on="id")  # evaluated epochs only
    out = []
    for label, g in e.groupby("label", sort=True):
        by = g.groupby("epoch")[metric]
        stats = by.agg(["mean", "min", "max", "count"]).reset_index()
        out.append({"label": label, "epoch": stats.epoch.tolist(), "y": stats["mean"].tolist(),
                    "low": stats["min"].tolist(), "high": stats["max"].tolist(), "seeds": int(g.id.nunique())})
    return out


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
        for name, value in d["prernn"].items() if d["x"] else ():
            fig.add_trace(go.Scatter(x=[min(d["x"]), max(d["x"])], y=[value] * 2, mode="lines",
                                     name=name, line={"color": colour, "dash": "dash"}))
    fig.update_layout(title=title or f"Hidden size vs {metric}", xaxis={"type": "log", "title": "hidden size"},
                      yaxis={"title": metric}, template="plotly_white")
    return fig


def bars(data: list[dict], metric: str, title: str = "", paper_axis: bool = False):
    """``paper_axis``: the paper's values on a right-hand axis of their own (a miniature's
    scale is not the paper's)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    n = len(data)
    for i, d in enumerate(data):
        colour = COLOURS.get(d["cell"])
        offset = (i - (n - 1) / 2) * 0.8 / max(n, 1)  # where the grouped bar of this series sits
        fig.add_trace(go.Bar(x=d["x"], y=d["y"], error_y={"type": "data", "array": d["error"]}, name=d["cell"],
                             marker_color=colour, opacity=0.55, offsetgroup=str(i)))
        xs = [j + offset for j, seeds in enumerate(d["points"]) for _ in seeds]
        ys = [v for seeds in d["points"] for v in seeds]
        if ys:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"{d['cell']} seeds", xaxis="x2",
                                     marker={"color": colour, "size": 6, "line": {"width": 1, "color": "white"}}))
        fig.add_trace(go.Scatter(x=d["x"], y=d["paper"], mode="markers", name=f"{d['cell']} (paper)",
                                 yaxis="y2" if paper_axis else "y",
                                 marker={"symbol": "x", "color": colour, "size": 9}))
    categories = data[0]["x"] if data else []
    layout = {"title": title, "barmode": "group", "yaxis": {"title": metric}, "template": "plotly_white",
              "xaxis": {"type": "category"},
              "xaxis2": {"overlaying": "x", "range": [-0.5, len(categories) - 0.5], "visible": False}}
    if paper_axis:
        layout["yaxis2"] = {"title": f"{metric} (the paper's, full size)", "overlaying": "y", "side": "right",
                            "tickformat": ".3f", "showgrid": False}
    fig.update_layout(**layout)
    return fig


def curves(data: list[dict], metric: str, title: str = ""):
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, d in enumerate(data):
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=d["epoch"] + d["epoch"][::-1], y=d["high"] + d["low"][::-1], fill="toself",
                                 line={"width": 0}, fillcolor=colour, opacity=0.2, hoverinfo="skip",
                                 showlegend=False, legendgroup=d["label"]))
        fig.add_trace(go.Scatter(x=d["epoch"], y=d["y"], mode="lines", line={"color": colour},
                                 name=f"{d['label']} ({d['seeds']} seeds)", legendgroup=d["label"]))
    fig.update_layout(title=title or f"Learning curves: {metric} per epoch, the seeds' mean and range",
                      xaxis={"title": "epoch"}, yaxis={"title": metric}, template="plotly_white")
    return fig


def timeline(data: list[dict], title: str = "Trial timeline"):
    import plotly.graph_objects as go

    fig = go.Figure()
    for status, colour in ((Status.COMPLETED, "#2ca02c"), (Status.PRUNED, "#9467bd"), (Status.FAILED, "#d62728"),
                           (Status.DIVERGED, "#8c564b")):
        rows = [d for d in data if d["status"] == status]
        if not rows:
            continue
        fig.add_trace(go.Bar(
            base=[d["start"] for d in rows], x=[(d["finish"] - d["start"]).total_seconds() * 1000 for d in rows],
            y=[d["worker"] for d in rows], orientation="h", name=status, marker_color=colour,
            text=[d["label"] for d in rows], textposition="none", hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis={"type": "date", "title": "time"}, barmode="overlay", template="plotly_white")
    return fig
