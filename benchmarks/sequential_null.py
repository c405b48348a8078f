#!/usr/bin/env python
"""The error rate of ``--until-decided``, measured through its real decision code.

    python benchmarks/sequential_null.py [--claims 2000] [--tables 100] [--power-claims 500]
                                         [--procedure sequential|fixed] [--seed 0]
    python benchmarks/sequential_null.py --choose-g     # how analysis.stats.PRIOR_G was chosen

Each simulated claim is a sweep of two configurations and one claim between them (a spec
of the toy task, expanded by ``launch.expand``); each simulated table is the mini Table 1
spec (72 trials, its 18 paper claims, Holm within the table). Nothing trains: a trial's
metric is drawn from (its configuration, its seed) - paired noise of sd 1/sqrt(2) shared
by every configuration of a seed, plus noise of sd 1/sqrt(2) of its own, so the paired
difference of two arms has sd 1 - and the rounds go through ``cli.seeding.until_decided``
(``analysis.claims.test``, Holm, the decision, ``more_seeds``) with the CLI's defaults: the
spec's 3 seeds, 2 more a round, at most 10.

It prints, on lines that say "false": the share of null claims (two arms of one
distribution) that ended reproduced or reversed, with its 95% Clopper-Pearson interval
(goal: at most 5%), and for tables the share in which any of the 18 did (the family-wise
rate Holm controls); then, for a real effect of 1 paired sd, the power (the share decided
reproduced) and the seeds used. ``--procedure fixed`` runs the same loop with the
fixed-sample t-test at every round, as ``--until-decided`` did before issue 25.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats as scistats  # noqa: E402

from analysis import stats  # noqa: E402
from analysis.data import SweepData  # noqa: E402
from cli import seeding  # noqa: E402
from launch.expand import expand  # noqa: E402
from launch.spec import load_spec  # noqa: E402
from records import Status, arm_id, flatten  # noqa: E402

PAIR = """
name: pair
task: toy
data: {source: toy, train_videos: 8, test_videos: 4, frames: 4, size: 8}
backbone: {name: mini_vgg, pretrained: none}
train: {epochs: 1, lr: 0.01}
seeds: [0, 1, 2]
grid:
  - {model: traditional, cell: gru, hidden_dim: 8, train.lr: [0.05, 0.1]}
claims:
  - {name: one arm beats the other, better: {train.lr: 0.05}, worse: {train.lr: 0.1}}
"""


@dataclass
class Result:
    claims: int
    reproduced: int
    reversed: int
    equivalent: int
    tables: int = 0
    tables_with_a_false_decision: int = 0
    seeds_mean: float = 0.0
    max_seeds_used: int = 0

    @property
    def false_rate(self) -> float:
        return (self.reproduced + self.reversed) / self.claims


def _value(arm: str, seed: int, run: int, effect: float, better_arm: str | None) -> float:
    """A trial's metric (a loss: lower is better): paired noise of its seed, its own noise,
    ``effect`` lower for the claimed-better arm."""
    shared = np.random.default_rng([run, seed]).standard_normal() / np.sqrt(2)
    own = np.random.default_rng([run, seed, int(hashlib.sha256(arm.encode()).hexdigest()[:8], 16)]).standard_normal()
    return float(shared + own / np.sqrt(2) - (effect if arm == better_arm else 0.0))


def _sweep(spec, plan, run: int, effect: float, better_arm: str | None, metric: str, max_seeds: int, batch: int,
           procedure: str | None) -> tuple[pd.DataFrame, int]:
    """One --until-decided run over simulated metrics: the last test and the most seeds an arm got.
    ``procedure`` None: the loop's own, as the CLI calls it."""
    known = {t.id: t for t in plan}
    rows = {t.id: {**flatten(t.config), "id": t.id, "status": Status.COMPLETED, "arm": arm_id(t.config)} for t in plan}

    def read() -> SweepData:
        return SweepData(pd.DataFrame([{**r, metric: _value(r["arm"], r["seed"], run, effect, better_arm)}
                                       for r in rows.values()]), {}, {"trials": {}, "max_seeds": max_seeds})

    def ran(new) -> bool:
        for t in new:
            known[t.id] = t
            rows[t.id] = {**flatten(t.config), "id": t.id, "status": Status.COMPLETED, "arm": arm_id(t.config)}
        return True

    _, tested = seeding.until_decided(spec, plan, read, ran, metric, "min", batch, max_seeds, log=lambda *_: None,
                                      **({} if procedure is None else {"procedure": procedure}))
    seeds = pd.Series([t.config.seed for t in known.values()]).groupby([arm_id(t.config) for t in known.values()])
    return tested, int(seeds.nunique().max())


def simulate(claims: int = 2000, effect: float = 0.0, seed: int = 0, max_seeds: int = 10, batch: int = 2,
             procedure: str | None = None) -> Result:
    """``claims`` independent claims, each its own sweep of two arms (``procedure`` None: the
    one --until-decided uses)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pair.yaml"
        path.write_text(PAIR)
        spec = load_spec(path)
    plan = expand(spec)
    better = arm_id(next(t for t in plan if t.config.train.lr == 0.05).config)
    out, used = Result(0, 0, 0, 0), []
    for run in range(claims):
        tested, most = _sweep(spec, plan, seed * 1_000_000 + run, effect, better, "test_loss", max_seeds, batch,
                              procedure)
        verdict = tested.verdict.iloc[0]
        out.claims += 1
        out.reproduced += verdict == stats.REPRODUCED
        out.reversed += verdict == stats.REVERSED
        out.equivalent += verdict == stats.EQUIVALENT
        used.append(most)
    out.seeds_mean, out.max_seeds_used = float(np.mean(used)), max(used)
    return out


def simulate_tables(tables: int = 100, seed: int = 0, max_seeds: int = 10, batch: int = 2,
                    procedure: str | None = None) -> Result:
    """Mini Table 1 with every cell of one distribution: its 18 claims at once."""
    spec = load_spec(ROOT / "sweeps/table1.yaml")
    plan = expand(spec)
    out, used = Result(0, 0, 0, 0), []
    for run in range(tables):
        tested, most = _sweep(spec, plan, 7_000_000 + seed * 1_000_000 + run, 0.0, None, "test_loss", max_seeds,
                              batch, procedure)
        false = tested.verdict.isin([stats.REPRODUCED, stats.REVERSED])
        out.claims += len(tested)
        out.reproduced += int((tested.verdict == stats.REPRODUCED).sum())
        out.reversed += int((tested.verdict == stats.REVERSED).sum())
        out.tables += 1
        out.tables_with_a_false_decision += bool(false.any())
        used.append(most)
    out.seeds_mean, out.max_seeds_used = float(np.mean(used)), max(used)
    return out


def choose_g(runs: int = 3000, seeds: int = 10) -> None:
    """The design simulation PRIOR_G was chosen by, before any result was read: the e-process
    alone (no spec, no store) over up to 10 seeds - its running maximum, as ``anytime_p``
    takes it - for a lone claim (level 0.05) and the first test of a family of 18 (0.05 / 18),
    at effects of 0, 1 and 1.5 paired sd."""
    rng = np.random.default_rng(1)
    for g in (0.5, 1, 2, 4, 8):
        for m in (1, 18):
            parts = []
            for effect in (0.0, 1.0, 1.5):
                hits = [stats.e_values(d, g).max() >= m / stats.ALPHA for d in rng.normal(effect, 1, (runs, seeds))]
                parts.append(f"effect {effect:g}: {100 * np.mean(hits):.1f}% decided")
            print(f"g={g:<4} family of {m:>2}: " + ", ".join(parts))


def interval(k: int, n: int) -> str:
    """95% Clopper-Pearson interval of a proportion, in percent."""
    low = scistats.beta.ppf(0.025, k, n - k + 1) if k else 0.0
    high = scistats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"[{100 * low:.1f}%, {100 * high:.1f}%]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--claims", type=int, default=2000)
    p.add_argument("--tables", type=int, default=100)
    p.add_argument("--power-claims", type=int, default=500)
    p.add_argument("--effect", type=float, default=1.0, help="the real effect of the power run, in paired sd")
    p.add_argument("--procedure", choices=[stats.SEQUENTIAL, stats.FIXED],
                   help="force one (default: the one --until-decided uses, sequential)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--choose-g", action="store_true", help="print the simulation the prior scale was chosen by")
    a = p.parse_args()
    if a.choose_g:
        choose_g()
        return 0
    print(f"--until-decided's schedule: 3 seeds, +2 a round, at most 10; procedure: {a.procedure or 'its own'}")
    null = simulate(a.claims, 0.0, a.seed, procedure=a.procedure)
    k = null.reproduced + null.reversed
    print(f"false decisions: {100 * null.false_rate:.1f}% of {null.claims} null claims ({null.reproduced} reproduced, "
          f"{null.reversed} reversed), 95% interval {interval(k, null.claims)}; goal at most 5%")
    if a.tables:
        t = simulate_tables(a.tables, a.seed, procedure=a.procedure)
        print(f"false decisions in a table of 18: {100 * t.tables_with_a_false_decision / t.tables:.1f}% of {t.tables} "
              f"tables had any (family-wise), 95% interval {interval(t.tables_with_a_false_decision, t.tables)}; "
              f"{100 * t.false_rate:.2f}% of their {t.claims} claims; seeds per arm: mean {t.seeds_mean:.1f}")
    if a.power_claims:
        pw = simulate(a.power_claims, a.effect, a.seed + 1, procedure=a.procedure)
        print(f"power at an effect of {a.effect:g} paired sd: {100 * pw.reproduced / pw.claims:.1f}% of {pw.claims} "
              f"claims reproduced {interval(pw.reproduced, pw.claims)}, {pw.reversed} reversed; seeds per arm: mean "
              f"{pw.seeds_mean:.1f}, at most {pw.max_seeds_used}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
