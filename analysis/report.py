"""One self-contained HTML report per sweep: the claims and their verdicts first, then the
paper's table, the reference rows, figures, provenance and every trial.

Works offline: plotly's JavaScript is embedded once (with the first figure). Failed,
diverged and missing trials are shown, never dropped; a figure with nothing to draw is
left out with a one-line note.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from records import GOOD

from . import figures
from .data import MISSING, load, load_epochs
from .tables import LAYOUTS, cell_values, references, table, wide

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
    """The report's HTML text: the claims and their verdicts first, then the table, the
    reference rows, the figures (each only with data to show), provenance, trials."""
    from prernn.tasks import TASKS

    from .summary import interval, level_text, summarize, verdict_text

    task = TASKS[spec.task]
    metric = task.primary
    data = load(sweep_dir, spec.task, expected, spec.profile)
    df = data.trials
    epochs = load_epochs(sweep_dir, spec.task)
    epochs = epochs[epochs.id.isin(set(df.id))]
    s = summarize(data, spec, metric, task.mode)
    parts = [f"<h1>{html.escape(spec.name)}: {html.escape(spec.description or spec.task)}</h1>",
             f"<p class=note>{html.escape(s.title)}</p>"]
    parts.append("<h2>Claims</h2>")
    if s.claims is not None and len(s.claims):
        c = s.claims.assign(decision=[interval(r, s.digits) for _, r in s.claims.iterrows()],
                            unadjusted=[interval(r, s.digits, "t_low", "t_high") for _, r in s.claims.iterrows()],
                            verdict_text=[verdict_text(r) for _, r in s.claims.iterrows()])
        counts = c.verdict.value_counts().to_dict()
        sequential = (c.procedure == "sequential").any()
        parts.append(f"<p>{len(c)} claims: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                     + f". The improvement is positive when the claim holds. The verdict is read from one interval, "
                     f"shown first ({html.escape(level_text(c))}): "
                     + ("a confidence sequence over the seeds, valid however many seeds --until-decided added"
                        if sequential else "the t interval over seeds (paired by seed where the arms share seeds)")
                     + " at the level Holm's step-down tested the claim at within its table - reproduced above 0, "
                     "reversed below, equivalent within the practical margin (declared before the run), else "
                     "inconclusive with the reason and the seeds that would resolve the observed effect at 80% "
                     "power. Beside it, for reference only: the unadjusted 95% t interval, a seeded bootstrap "
                     "interval, Hedges' g, the probability that the claimed-better arm wins, the raw and "
                     "Holm-adjusted p.</p>")
        shown = c[["claim", "decision", "unadjusted", "n", "margin", "boot_low", "boot_high", "hedges_g", "p_superior",
                   "p", "p_holm", "verdict_text", "why"]].rename(columns={
                       "decision": "improvement [the verdict's interval]", "unadjusted": "95% t (unadjusted)",
                       "verdict_text": "verdict"})
        parts.append(_table_html(shown.round(4)).replace("<td>reversed", "<td class=bad>reversed"))
    else:
        parts.append("<p class=note>no claims: the sweep has no paper table and declares none (claims: in the "
                     "spec)</p>")
    for note in s.notes:
        cls = "bad" if note.startswith("WARNING") else "note"
        parts.append(f"<p class={cls}>{html.escape(note)}</p>")
    figs, left_out = [], []
    if spec.reference in LAYOUTS and len(df):
        long = table(df, spec.reference, metric)
        parts.append(f"<h2>{spec.reference.title()}: ours | the paper's</h2>"
                     "<p class=note>ours: mean over completed seeds, ± the 95% CI half-width when n > 1; "
                     "— not run, 'failed' only failed trials; the paper's value after the bar (full-size data "
                     "and models)" + (", and Δ = ours − the paper's" if spec.profile == "paper" else
                                      "; a miniature's scale is not the paper's: compare orderings") + ".</p>"
                     + _table_html(wide(long, diff=spec.profile == "paper"), index=True))
        detail = long[["row", "column", "n", "mean", "std", "ci_low", "ci_high", "paper", "diff", "failed",
                       "missing", "status"]]
        parts.append("<details><summary>every cell: n, mean, std, 95% CI, the paper, the difference</summary>"
                     + _table_html(detail.round(4)) + "</details>")
        sizes = figures.hidden_size_data(df, metric)
        if spec.reference == "table1":
            (figs if sizes else left_out).append(figures.hidden_size(sizes, metric) if sizes else
                                                 "hidden size vs metric: no completed traditional sizes")
        bars = figures.bars_data(long, cell_values(df, spec.reference, metric))
        if bars:
            figs.append(figures.bars(bars, metric, f"{spec.reference.title()}: ours (every seed) vs the paper",
                                     paper_axis=spec.profile != "paper"))
        else:
            left_out.append("bars: no completed cell")
    refs = references(df, metric)
    if len(refs):
        parts.append("<h2>Reference rows</h2><p class=note>constant: the training set's mean target or class "
                     "frequencies; linear probe: a linear read-out of the frozen pre-trained features; per-frame "
                     "CNN: the fine-tuned network without recurrence (PreVRNN with U fixed at zero).</p>"
                     + _table_html(refs[["column", "n", "mean", "std", "ci_low", "ci_high", "failed", "missing",
                                         "status"]].round(4)))
    curves = figures.curves_data(epochs, df, metric)
    (figs if curves else left_out).append(figures.curves(curves, metric) if curves else
                                          "learning curves: no evaluated epochs")
    timeline = figures.timeline_data(df)
    (figs if timeline else left_out).append(figures.timeline(timeline) if timeline else
                                            "timeline: no trial has run")
    parts.append("<h2>Figures</h2>")
    for i, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="480px"))
    for why in left_out:
        parts.append(f"<p class=note>left out, {html.escape(why)}</p>")
    prov = provenance(df, spec)
    parts.append("<h2>Provenance</h2>" + _table_html(pd.DataFrame(list(prov.items()), columns=["", "value"])))
    cols = [c for c in ("label", "seed", "status", metric, "epochs_done", "wall_seconds", "id") if c in df]
    bad = df[~df.status.isin(GOOD)] if len(df) else df
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
