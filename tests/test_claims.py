"""Claims with verdicts: planted effects on fixture stores are reproduced, planted nulls stay
inconclusive, planted reversals come out reversed; the statistics agree with scipy and
statsmodels; the bootstrap is deterministic under its seed."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scistats

from analysis import claims as claimlib
from analysis.stats import compare, holm, verdict

from .conftest import ROOT
from .stores import fake_store


def test_the_paired_t_interval_is_scipys():
    rng = np.random.default_rng(1)
    better = {s: 0.20 + 0.01 * rng.standard_normal() for s in range(5)}
    worse = {s: 0.23 + 0.01 * rng.standard_normal() for s in range(5)}
    c = compare(better, worse, "min")
    d = np.array([worse[s] - better[s] for s in range(5)])
    ci = scistats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert c.paired and abs(c.t_low - ci.low) < 1e-9 and abs(c.t_high - ci.high) < 1e-9
    assert abs(c.p - scistats.ttest_1samp(d, 0.0).pvalue) < 1e-12 and c.improvement > 0


def test_unpaired_arms_use_welchs_interval():
    better, worse = {0: 0.71, 1: 0.74, 2: 0.72}, {3: 0.60, 4: 0.65, 5: 0.62, 6: 0.61}
    c = compare(better, worse, "max")
    test = scistats.ttest_ind(list(better.values()), list(worse.values()), equal_var=False)
    ci = test.confidence_interval(0.95)
    assert not c.paired and abs(c.t_low - ci.low) < 1e-9 and abs(c.t_high - ci.high) < 1e-9
    assert 0 <= c.p_superior <= 1 and c.p_superior == 1.0


def test_the_bootstrap_is_deterministic_under_its_seed():
    better, worse = {s: 0.2 + 0.01 * (s % 3) for s in range(6)}, {s: 0.21 + 0.01 * (s % 2) for s in range(6)}
    a, b, c = compare(better, worse, "min", seed=3), compare(better, worse, "min", seed=3), compare(better, worse, "min", seed=4)
    assert (a.boot_low, a.boot_high) == (b.boot_low, b.boot_high) != (c.boot_low, c.boot_high)


def test_holm_adjusts_as_statsmodels_does():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, rng.integers(1, 12)).tolist()
        assert np.allclose(holm(p), multipletests(p, method="holm")[1], atol=1e-12)


def test_seeds_needed_gives_80_percent_power_at_the_observed_effect():
    better = {s: 0.20 + (0.004 if s % 2 else -0.004) for s in range(4)}
    worse = {s: 0.201 + (0.004 if s % 3 else -0.004) for s in range(4)}
    c = compare(better, worse, "min")
    assert c.p > 0.05 and c.seeds_needed is not None and c.seeds_needed > 4


def test_seeds_that_all_differ_by_the_same_amount_decide_nothing():
    """Two seeds of accuracies counted on four videos, the same 0.25 apart in both: no
    spread to test against, so no verdict (a t-test would say p = 0)."""
    better, worse = {0: 0.50, 1: 0.75}, {0: 0.25, 1: 0.50}
    c = compare(better, worse, "max")
    assert c.improvement == 0.25 and np.isnan(c.p) and verdict(c, None) == "inconclusive"
    df = pd.DataFrame({"seed": [0, 1, 0, 1], "status": "completed", "test_accuracy": [0.5, 0.75, 0.25, 0.5],
                       "model.model": ["prernn"] * 2 + ["traditional"] * 2})
    tested = claimlib.test([claimlib.Claim("PreRNN > traditional", {"model.model": "prernn"},
                                           {"model.model": "traditional"})], df, "test_accuracy", "max")
    assert tested.verdict.tolist() == ["inconclusive"] and tested.why[0] == claimlib.NO_SPREAD


def _planted(tmp_path, effect: float):
    """Mini Table 1 with 5 seeds: PreRNN's loss = the traditional RNNs' (0.2) - effect, with
    seed-to-seed noise of sd 0.002 shared by the arms of a seed (so pairing helps)."""
    rng = np.random.default_rng(7)
    noise = {s: 0.002 * rng.standard_normal() for s in range(5)}

    def value(i, t):
        m = t.config.model
        base = 0.2 + noise[t.config.seed] + 0.0005 * rng.standard_normal()
        return base - effect if m.model == "prernn" else base if m.model == "traditional" else 0.3

    spec, trials = fake_store(ROOT / "sweeps/table1.yaml", tmp_path, seeds=range(5), value=value)
    from analysis.data import trials as load

    return claimlib.table_claims(load(tmp_path, spec.task, trials), "table1", "test_loss", "min")


@pytest.mark.parametrize("effect,expected", [(0.01, "reproduced"), (0.0, "inconclusive"), (-0.01, "reversed")])
def test_planted_effects_get_their_verdicts(tmp_path, effect, expected):
    out = _planted(tmp_path, effect)
    assert len(out) == 18  # 3 cells x (5 sizes + matched)
    assert (out.verdict == expected).all(), out[["claim", "improvement", "p_holm", "verdict"]]
    assert out.paired.all() and (out.n == 5).all()
    if expected != "inconclusive":
        assert ((out.t_low > 0) if expected == "reproduced" else (out.t_high < 0)).all()
        assert (out.p_holm >= out.p).all()


def test_the_verdict_uses_the_holm_adjusted_p():
    assert verdict(compare({0: 1.0, 1: 1.1, 2: 0.9}, {0: 2.0, 1: 2.1, 2: 1.9}, "min"), 0.2) == "inconclusive"
    assert verdict(None, None) == "inconclusive"


def test_a_spec_declares_its_own_claims(write_spec, tmp_path):
    from launch.spec import SpecError, load_spec

    from .conftest import TOY

    ok = dict(TOY, claims=[{"name": "gru beats vrnn", "better": {"model": "traditional", "cell": "gru"},
                            "worse": {"model": "traditional", "cell": "vrnn"}}])
    spec = load_spec(write_spec(ok))
    (c,) = claimlib.spec_claims(spec)
    assert c.name == "gru beats vrnn" and c.better == {"model.model": "traditional", "model.cell": "gru"}
    bad = dict(TOY, claims=[{"better": {"cel": "gru"}, "worse": {"cell": "vrnn"}}])
    with pytest.raises(SpecError, match=r"claims\.0\.better\.cel: unknown key 'cel'.*did you mean 'cell'"):
        load_spec(write_spec(bad, filename="bad.yaml"))
    df = pd.DataFrame({"status": "completed", "seed": [0, 1, 0, 1], "model.model": "traditional",
                       "model.cell": ["gru", "gru", "vrnn", "vrnn"], "test_loss": [0.1, 0.11, 0.2, 0.22]})
    out = claimlib.test([c], df, "test_loss", "min")
    assert out.n.iloc[0] == 2 and out.improvement.iloc[0] == pytest.approx(0.105)


UNTIL = """
name: ud
task: toy
data: {source: toy, train_videos: 16, test_videos: 8, frames: 4, size: 8}
backbone: {name: mini_vgg, pretrained: none}
train: {epochs: 8, batch_size: 4, lr: 0.01, schedule: constant}
seeds: [0]
grid:
  - {model: traditional, cell: gru, hidden_dim: 8, train.lr: [0.05, 1.0e-6]}
  - {model: constant, train.lr: [0.01, 0.02]}
claims:
  - name: a trained gru beats one that does not learn
    better: {model: traditional, train.lr: 0.05}
    worse: {model: traditional, train.lr: 1.0e-6}
  - name: a constant beats the same constant
    better: {model: constant, train.lr: 0.01}
    worse: {model: constant, train.lr: 0.02}
"""


@pytest.mark.slow
def test_until_decided_adds_seeds_only_while_a_claim_is_undecided(write_spec, tmp_path):
    """A real effect (a learning GRU against one that cannot learn) is decided after a few
    seeds, and its configurations get no more; a null (one constant against the same) never
    is, and stops at --max-seeds with the reason. A rerun adds nothing."""
    from .conftest import sweep

    spec, results = write_spec(UNTIL), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--until-decided", "--max-seeds", "7")
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(results / "trials")
    seeds = df.groupby(["model.model", "train.lr"]).seed.apply(lambda s: sorted(s))
    gru = seeds["traditional"]
    assert list(gru.iloc[0]) == list(gru.iloc[1]) and 2 < len(gru.iloc[0]) < 7  # stopped once decided
    assert all(list(s) == list(range(7)) for s in seeds["constant"])  # on to the cap
    assert "1 of 2 claims decided" in out.stdout and "reproduced" in out.stdout
    assert "undecided: a constant beats the same constant (no difference at all between its arms)" in \
        " ".join(out.stdout.split())
    again = sweep(spec, "--results-dir", results, "--until-decided", "--max-seeds", "7")
    assert again.returncode == 0 and len(pd.read_parquet(results / "trials")) == len(df)


@pytest.mark.bad_input
def test_until_decided_on_slurm_needs_wait(write_spec, tmp_path):
    from .conftest import sweep

    out = sweep(write_spec(UNTIL), "--results-dir", tmp_path / "r", "--backend", "slurm", "--until-decided")
    assert out.returncode == 2 and "with --backend slurm add --wait" in out.stderr and not (tmp_path / "r").exists()
