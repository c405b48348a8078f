"""Adaptive seeding (``--until-decided``): seeds go where a claim is still undecided.

The claims (the paper's about the spec's table, and the spec's own: ``analysis.claims``)
are tested with the sequential procedure (``analysis.stats``: an anytime-valid
confidence sequence per claim, Holm within a table), from the sweep's own seeds on:
seeds chosen by looking at the results would make a fixed-sample test's error rate
meaningless. Every configuration behind an *inconclusive* claim - the trials of either
arm - gets the next ``batch`` seeds it does not have yet, up to ``max_seeds`` seeds in
all; those trials run, and the claims are tested again, until each is decided or every
configuration behind the undecided ones has ``max_seeds`` seeds. A decided claim stays
decided: its confidence sequence only narrows as seeds are added.

An added seed is an ordinary content-addressed trial (its config is the configuration's
with another seed): a rerun finds it recorded and adds nothing that exists. The store
keeps which seeds were added to the spec's plan (``records.Store.write_seeding``), so
``summary``, ``report``, ``status`` and the notebooks read the same trials and test them
the same way later.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from analysis import claims as claimlib
from analysis import stats
from analysis.data import SweepData
from analysis.tables import LAYOUTS, cells, table as long_table

from launch.expand import Trial
from records import arm_id, trial_id


def test_claims(spec, data: SweepData, metric: str, mode: str, max_seeds: int | None = None,
                procedure: str = stats.SEQUENTIAL) -> tuple[pd.DataFrame, list[tuple]]:
    """The claims tested (sequentially; ``procedure`` fixed only to measure what that would do)
    and, per claim, (claim, the frame its arms select from)."""
    df = data.trials
    tested, arms = [], []
    if spec.reference in LAYOUTS and len(df):
        frame = cells(df, spec.reference)
        paper = claimlib.paper_claims(spec.reference, long_table(df, spec.reference, metric), spec.profile)
        tested.append(claimlib.test(paper, frame, metric, mode, procedure=procedure, max_seeds=max_seeds))
        arms += [(c, frame) for c in paper]
    own = claimlib.spec_claims(spec)
    if own and len(df):
        tested.append(claimlib.test(own, df, metric, mode, procedure=procedure, max_seeds=max_seeds))
        arms += [(c, df) for c in own]
    return (pd.concat(tested, ignore_index=True) if tested else pd.DataFrame(columns=claimlib.COLUMNS)), arms


def more_seeds(tested: pd.DataFrame, arms: list[tuple], known: dict[str, Trial], batch: int,
               max_seeds: int) -> list[Trial]:
    """New trials: the next seeds of every configuration behind an inconclusive claim."""
    seeds: dict[str, set[int]] = {}
    configs: dict[str, object] = {}
    for t in known.values():
        key = arm_id(t.config)
        seeds.setdefault(key, set()).add(t.config.seed)
        configs.setdefault(key, t.config)
    undecided = set(tested.claim[tested.verdict == stats.INCONCLUSIVE])
    wanted: set[str] = set()
    for claim, frame in arms:
        if claim.name in undecided:
            for side in (claim.better, claim.worse):
                wanted |= {arm_id(known[i].config) for i in frame.id[claimlib.select(frame, side)] if i in known}
    out = []
    for key in sorted(wanted):
        have, nxt, added = set(seeds[key]), max(seeds[key]) + 1, 0
        while len(have) < max_seeds and added < batch:
            while nxt in have:
                nxt += 1
            config = configs[key].replace(seed=nxt)
            out.append(Trial(trial_id(config), config))
            have.add(nxt)
            added += 1
    return out


def until_decided(spec, plan: list[Trial], read: Callable[[], SweepData], run: Callable[[list[Trial]], bool],
                  metric: str, mode: str, batch: int, max_seeds: int, log=print,
                  procedure: str = stats.SEQUENTIAL) -> tuple[list[Trial], pd.DataFrame]:
    """Rounds of added seeds until every claim is decided or the budget is spent. ``read()``
    gives the plan's trials with those added so far; ``run(trials)`` runs new ones (False:
    they have not all ended, stop). Returns the trials added and the last test."""
    known = {t.id: t for t in plan}
    ran = set(known)
    for round_ in range(1, 1000):
        data = read()
        configs = {arm_id(t.config): t.config for t in known.values()}
        for i, arm, seed in zip(data.trials.id, data.trials.arm, data.trials.seed):
            if i not in known and arm in configs:  # a seed an earlier run added
                known[i] = Trial(i, configs[arm].replace(seed=int(seed)))
                ran.add(i)
        tested, arms = test_claims(spec, data, metric, mode, max_seeds, procedure)
        new = [t for t in more_seeds(tested, arms, known, batch, max_seeds) if t.id not in ran]
        undecided = int((tested.verdict == stats.INCONCLUSIVE).sum())
        if not undecided or not new:
            break
        log(f"--until-decided, round {round_}: {undecided} of {len(tested)} claims undecided: "
            f"{len(new)} trials with more seeds")
        known.update({t.id: t for t in new})
        ran |= {t.id for t in new}
        if not run(new):
            break
    return [t for t in known.values() if t.id not in {p.id for p in plan}], tested


def undecided_lines(tested: pd.DataFrame, max_seeds: int) -> list[str]:
    """Why each claim that is still inconclusive stayed so."""
    out = []
    for _, r in tested[tested.verdict == stats.INCONCLUSIVE].iterrows():
        why = r.why if pd.notna(r.get("why")) else "undecided"
        if why == stats.NO_SPREAD and r.get("improvement") == 0:
            why = "no difference at all between its arms"
        elif why == stats.BUDGET:
            why = f"at --max-seeds {max_seeds} its interval still contains 0"
        if pd.notna(r.get("seeds_needed")) and why != "no difference at all between its arms":
            why += f"; the observed effect would need ~{int(r.seeds_needed)} seeds"
        out.append(f"undecided: {r.claim} ({why})")
    return out
