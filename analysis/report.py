"""One self-contained HTML report per sweep: the paper's table, figures, provenance.

Works offline: plotly's JavaScript is embedded once (with the first figure). Failed,
diverged and missing trials are shown, never dropped.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import figures
from .data import MISSING, load_epochs, trials as load_trials
from .tables import LAYOUTS, not_beating_constant, references, table, wide

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f4f4f4}.bad{color:#b00}h2{margin-top:1.6em}.note{color:#555}"""


def _table_html(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_html(index=index, na_rep="—", escape=True, border=0)


def provenance(df: pd.DataFrame, spec) -> dict[str, str]:
    ran = df[df.status != MISSING] if len(df) else df

    def distinct(col: str) -> str:
        values = sorted({str(v) for v in ran[col].dropna()}) if col in ran else []
        return ", ".join(values) or "—"

    backends = sorted({str(w).split("/")[0] for w in ran.get("worker", pd.Series(dtype=str)).dropna()})
    out = {"sweep": spec.name, "profile": spec.profile, "task": spec.task, "backend": ", ".join(backends) or "—",
           "commit": distinct("git_commit"), "hosts": distinct("host"), "hardware": distinct("hardware")}
    if len(ran) and ran.started_at.notna().any():
        start, end = ran.started_at.min(), ran.finished_at.max()
        out["ran"] = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC ({(end - start).total_seconds() / 60:.1f} min wall)"
        out["trial time"] = f"{ran.wall_seconds.sum() / 60:.1f} min summed over trials"
    counts = df.status.value_counts().to_dict() if len(df) else {}
    out["trials"] = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    out["generated"] = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    return out


def build(spec, expected, sweep_dir: str | Path) -> str:
    """The report's HTML text."""
    from prernn.tasks import TASKS

    metric = TASKS[spec.task].primary
    df = load_trials(sweep_dir, spec.task, expected)
    epochs = load_epochs(sweep_dir, spec.task)
    parts = [f"<h1>{html.escape(spec.name)}: {html.escape(spec.description or spec.task)}</h1>"]
    prov = provenance(df, spec)
    parts.append("<h2>Provenance</h2>" + _table_html(pd.DataFrame(list(prov.items()), columns=["", "value"])))

    figs = []
    refs = references(df, metric)
    long = table(df, spec.reference, metric) if spec.reference in LAYOUTS and len(df) else None
    worse = not_beating_constant(long if long is not None else refs.iloc[:0], refs, TASKS[spec.task].mode)
    if worse:
        parts.append(f"<p class=bad><b>{len(worse)} model(s) do not beat the constant predictor</b> - they learned "
                     f"nothing the training set's mean did not already say: {html.escape(', '.join(worse))}</p>")
    if len(refs):
        parts.append("<h2>Reference rows</h2><p class=note>constant: the training set's mean target or class "
                     "frequencies; linear probe: a linear read-out of the frozen pre-trained features; per-frame "
                     "CNN: the fine-tuned network without recurrence (PreVRNN with U fixed at zero).</p>"
                     + _table_html(refs[["column", "n", "mean", "std", "ci_low", "ci_high", "failed", "missing",
                                         "status"]].round(4)))
    if long is not None:
        parts.append(f"<h2>{spec.reference.title()}: {metric} — ours | the paper's</h2>"
                     "<p class=note>ours: mean over completed seeds, ± the 95% CI half-width when n > 1; "
                     "— not run, 'failed' only failed trials; the paper's value after the bar "
                     "(full-size data and models) and Δ = ours − the paper's.</p>" + _table_html(wide(long), index=True))
        detail = long[["row", "column", "n", "mean", "std", "ci_low", "ci_high", "paper", "diff", "failed",
                       "missing", "status"]]
        parts.append("<details><summary>every cell: n, mean, std, 95% CI, the paper, the difference</summary>"
                     + _table_html(detail.round(4)) + "</details>")
        if spec.reference == "table1":
            figs.append(figures.hidden_size(figures.hidden_size_data(df, metric), metric))
        figs.append(figures.bars(figures.bars_data(long), metric, f"{spec.reference.title()}: ours vs the paper"))
    figs.append(figures.curves(figures.curves_data(epochs, df, metric), metric))
    figs.append(figures.timeline(figures.timeline_data(df)))
    parts.append("<h2>Figures</h2>")
    for i, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="480px"))

    cols = [c for c in ("label", "seed", "status", metric, "epochs_done", "wall_seconds", "id") if c in df]
    bad = df[~df.status.isin(["completed", "pruned"])] if len(df) else df
    parts.append(f"<h2>Trials that did not complete ({len(bad)})</h2>")
    if len(bad):
        parts.append(_table_html(bad[[c for c in ("label", "seed", "status", "error", "id") if c in bad]]
                                 .sort_values("label"), index=False).replace("<td>failed", "<td class=bad>failed"))
    else:
        parts.append("<p>none</p>")
    parts.append("<h2>All trials</h2>" + _table_html(df[cols].sort_values(["label", "seed"]).round(4)))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)} report</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def write(spec, expected, sweep_dir: str | Path, out: str | Path) -> Path:
    """Write the report atomically; return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build(spec, expected, sweep_dir))
    tmp.replace(out)
    return out
