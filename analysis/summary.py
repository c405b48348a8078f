"""The end-of-run summary, readable in an 80-column terminal.

1. The claims (``analysis.claims``): the paper's about its table and the spec's own,
   each with our improvement (positive: as claimed) and the interval its verdict was read
   from (Holm's level within the family; a confidence sequence when ``--until-decided``
   chose the seeds), n seeds, the verdict and, when inconclusive, why.
2. The paper's layout, turned so that it fits: one line per column of the paper's table
   (a hidden size, a variant), one column per cell type, each ``ours ±half | paper``
   (ours: the mean over seeds and the 95% half-interval). On the paper profile the
   difference to the paper is meaningful and shown; on a miniature it is not (another
   scale), and the rank agreement with the paper's ordering is shown instead (Kendall's
   tau per cell type).
3. The reference rows, a warning naming every model that does not beat the constant, and
   what the store held besides the spec's trials (left out, counted by why).
Sweeps without a paper table get a per-trial listing instead of 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from scipy import stats as scistats

from . import claims as claimlib
from . import stats
from .data import SweepData
from .tables import LAYOUTS, not_beating_constant, reference_text, references, table


@dataclass
class Summary:
    title: str
    claims: pd.DataFrame | None = None
    layout: pd.DataFrame | None = None  # rows of text: column, then one per cell type
    layout_header: list[str] = field(default_factory=list)
    listing: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    digits: int = 4  # decimals shown: 4 for losses (.0819), 3 for accuracies (.927), as the paper prints them


def short(x: float, digits: int = 4) -> str:
    """'.0123' / '-.0123' / '12.3': fewer characters for small metrics."""
    text = f"{x:.{digits}f}"
    return text.replace("0.", ".", 1) if abs(x) < 1 else text


def interval(r, digits: int = 4, low: str = "low", high: str = "high") -> str:
    """'+.0026 [+.0020,+.0033]': the improvement and the interval its verdict was read from (or,
    with ``low``/``high`` = 't_low'/'t_high', the unadjusted 95% t interval)."""
    if pd.isna(r.get("improvement")):
        return "—"
    sign = lambda v: ("+" if v >= 0 else "-") + short(abs(v), digits)  # noqa: E731
    if pd.isna(r.get(low)) or pd.isna(r.get(high)):
        return sign(r.improvement)
    return f"{sign(r.improvement)} [{sign(r[low])},{sign(r[high])}]"


SHORT_WHY = {stats.FEW_SEEDS: "n<2", stats.NO_SPREAD: "no spread", stats.STRADDLES: "margin",
             stats.BUDGET: "budget", stats.UNPAIRED: "unpaired", stats.SEVERAL: "arms"}


def verdict_text(r) -> str:
    """The verdict, and for an inconclusive claim its reason in a word ('inconclusive (margin)')
    and the seeds that would decide the observed effect ('~14')."""
    if r.verdict != stats.INCONCLUSIVE:
        return r.verdict
    word = SHORT_WHY.get(r.get("why"))
    n = r.get("seeds_needed")
    needed = "" if pd.isna(n) else f" ~{int(n)}" if n <= 99 else " >99"
    return f"inconclusive{f' ({word})' if word else ''}{needed}"


def legend(claims: pd.DataFrame) -> str:
    """What the words of the inconclusive verdicts shown mean (only those that occur)."""
    words = {SHORT_WHY.get(w): w for w in claims.why.dropna()}
    words.pop(None, None)
    parts = [f"({word}) {why}" for word, why in words.items()]
    if claims.seeds_needed.notna().any():
        parts.append("~N seeds per arm would decide the observed effect with 80% power")
    margins = claims.margin.dropna()
    if len(margins):
        values = dict.fromkeys(short(m, 4) for m in (margins.min(), margins.max()))
        parts.append(f"margin: {'-'.join(values)} in the metric's units")
    return "; ".join(parts)


def level_text(claims: pd.DataFrame) -> str:
    """How the intervals were made, per family: '99.71% t', '95% confidence sequence'."""
    kind = {stats.FIXED: "t", stats.SEQUENTIAL: "confidence sequence"}
    pairs = dict.fromkeys(zip(claims.procedure, claims.level))
    return "; ".join(f"{100 * level:.4g}% {kind[procedure]}" for procedure, level in pairs)


def summarize(data: SweepData, spec, metric: str, mode: str) -> Summary:
    trials = data.trials
    paper_profile = spec.profile == "paper"
    out = Summary(f"{spec.name} [{spec.profile} profile]: {metric}, "
                  f"{'lower' if mode == 'min' else 'higher'} is better", digits=4 if mode == "min" else 3)
    procedure = stats.SEQUENTIAL if data.seeding else stats.FIXED
    budget = (data.seeding or {}).get("max_seeds")
    tested = []
    if spec.reference in LAYOUTS and len(trials):
        long = table(trials, spec.reference, metric)
        tested.append(claimlib.table_claims(trials, spec.reference, metric, mode, spec.profile, procedure, budget))
        out.layout_header, out.layout = _layout(long, paper_profile, out.digits)
        if not paper_profile:
            out.notes.append("rank agreement with the paper's ordering (Kendall's tau; +1 the same order): "
                             + _rank_agreement(long, mode))
    else:
        long = pd.DataFrame(columns=["row", "column", "mean", "status"])
        out.listing = trials.sort_values(["label", "seed"])[["label", "seed", "status", metric]]
    own = claimlib.spec_claims(spec)
    if own and len(trials):
        tested.append(claimlib.test(own, trials, metric, mode, procedure=procedure, max_seeds=budget))
    if tested:
        out.claims = pd.concat(tested, ignore_index=True)
        if (out.claims.n < 2).all():
            out.notes.append(f"no claim can be tested: every configuration has at most one completed seed (this "
                             f"profile runs seeds {list(spec.seeds)}); add seeds with --set 'seeds=[0,1,2]' or "
                             "let --until-decided add them")
    refs = references(trials, metric)
    if len(refs):
        out.notes.append(f"reference rows: {reference_text(refs)}")
    worse = not_beating_constant(long, refs, mode)
    if worse:
        out.notes.append(f"WARNING: {len(worse)} model(s) do not beat the constant predictor - they learned nothing "
                         f"the training set's mean did not already say: {', '.join(worse)}")
    if data.left_out_note():
        out.notes.append(data.left_out_note())
    return out


def _layout(long: pd.DataFrame, paper_profile: bool, digits: int) -> tuple[list[str], pd.DataFrame]:
    rows = list(dict.fromkeys(long.row))
    lines = []
    for column in dict.fromkeys(long.column):
        # 'h=8 (256)': ours, then the paper's size; other columns as the claims name them
        line = [column.replace(" (paper ", " (") if column.startswith("h=") else claimlib.short_column(column)]
        for row in rows:
            r = long[(long.row == row) & (long.column == column)].iloc[0]
            line.append(_cell(r, paper_profile, digits))
        lines.append(line)
    n = sorted(set(long.n[long.status == "ok"]))
    header = [f"n={n[0]} seeds" if len(n) == 1 else "", *rows]
    return header, pd.DataFrame(lines, columns=header)


def _cell(r, paper_profile: bool, digits: int) -> str:
    if r.status == "n/a":
        return "n/a"
    # ours (mean ±95% half-interval over seeds) | the paper's value (difference on the paper profile)
    if r.status != "ok":
        ours = "failed" if r.status == "failed" else "—"
    else:
        ours = short(r["mean"], digits)
        if r.n > 1 and pd.notna(r.ci_high):
            ours += f" ±{short((r.ci_high - r.ci_low) / 2, digits)}"
    paper = f" | {short(r.paper, digits)}" if pd.notna(r.paper) else ""
    diff = (f" ({'+' if r['diff'] >= 0 else '-'}{short(abs(r['diff']), digits)})" if paper_profile and
            pd.notna(r["diff"]) else "")
    return ours + paper + diff


def _rank_agreement(long: pd.DataFrame, mode: str) -> str:
    parts = []
    for row, g in long.groupby("row", sort=False):
        g = g[(g.status == "ok") & g.paper.notna()]
        if len(g) < 3:
            parts.append(f"{row} —")
            continue
        tau = scistats.kendalltau(g["mean"], g.paper).statistic
        parts.append(f"{row} {tau:+.2f}" if pd.notna(tau) else f"{row} — (ties)")  # undefined when all equal
    return ", ".join(parts)
