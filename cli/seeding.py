"""Adaptive seeding (``--until-decided``): seeds go where a claim is still undecided.

After the sweep's own trials have run, the claims are tested (the paper's about the
spec's table, and the spec's own: ``analysis.claims``). Every configuration behind an
*inconclusive* claim - the trials of either arm, whatever their seed - gets the next
``batch`` seeds it does not have yet, up to ``max_seeds`` seeds in all; those trials run
on the sweep's backend, and the claims are tested again, until each is decided or
every configuration behind the undecided ones has ``max_seeds`` seeds. An added seed is
an ordinary content-addressed trial (its config is the configuration's with another
seed): a rerun finds it recorded and adds nothing that exists.
"""

from __future__ import annotations

import pandas as pd

from analysis import claims as claimlib
from analysis.tables import LAYOUTS, cells

from launch.expand import Trial, trial_id


def test_claims(spec, df: pd.DataFrame, metric: str, mode: str) -> tuple[pd.DataFrame, list[tuple]]:
    """The tested claims and, per claim, (claim, the frame its arms select from)."""
    tested, arms = [], []
    if spec.reference in LAYOUTS and len(df):
        frame = cells(df, spec.reference)
        long_claims = claimlib.paper_claims(spec.reference, _long(df, spec.reference, metric))
        tested.append(claimlib.test(long_claims, frame, metric, mode))
        arms += [(c, frame) for c in long_claims]
    own = claimlib.spec_claims(spec)
    if own and len(df):
        tested.append(claimlib.test(own, df, metric, mode))
        arms += [(c, df) for c in own]
    return (pd.concat(tested, ignore_index=True) if tested else pd.DataFrame(columns=["claim", "verdict"])), arms


def _long(df, table, metric):
    from analysis.tables import table as long_table

    return long_table(df, table, metric)


def _family(config) -> str:
    """A configuration's identity, seed aside."""
    return trial_id(config.replace(seed=0))


def more_seeds(tested: pd.DataFrame, arms: list[tuple], known: dict[str, Trial], batch: int,
               max_seeds: int) -> list[Trial]:
    """New trials: the next seeds of every configuration behind an inconclusive claim."""
    seeds: dict[str, set[int]] = {}
    configs: dict[str, object] = {}
    for t in known.values():
        key = _family(t.config)
        seeds.setdefault(key, set()).add(t.config.seed)
        configs.setdefault(key, t.config)
    undecided = set(tested.claim[tested.verdict == "inconclusive"])
    wanted: set[str] = set()
    for claim, frame in arms:
        if claim.name not in undecided:
            continue
        for side in (claim.better, claim.worse):
            mask = pd.Series(True, index=frame.index)
            for col, value in side.items():
                mask &= frame[col] == value
            wanted |= {_family(known[i].config) for i in frame.id[mask] if i in known}
    out = []
    for key in sorted(wanted):
        have = seeds[key]
        nxt = max(have) + 1
        while len(have) < max_seeds and len(out) < 10_000 and sum(1 for t in out if _family(t.config) == key) < batch:
            while nxt in have:
                nxt += 1
            config = configs[key].replace(seed=nxt)
            out.append(Trial(trial_id(config), config))
            have = have | {nxt}
    return out


def undecided_lines(tested: pd.DataFrame, max_seeds: int) -> list[str]:
    """Why each claim that is still inconclusive stayed so."""
    out = []
    for _, r in tested[tested.verdict == "inconclusive"].iterrows():
        if pd.notna(r.get("why")):
            why = r.why
        elif pd.notna(r.get("improvement")) and r.improvement == 0:
            why = "no difference at all between its arms"
        elif pd.notna(r.get("seeds_needed")):
            why = f"at --max-seeds {max_seeds}; the observed effect would need ~{int(r.seeds_needed)} seeds"
        else:
            why = f"at --max-seeds {max_seeds}"
        out.append(f"undecided: {r.claim} ({why})")
    return out
