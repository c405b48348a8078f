"""The statistics of one directed comparison over seeds, and of a family of them.

``compare(better, worse, mode)`` takes a metric's values of two arms keyed by seed and
says how sure we are that the first is better: arms that share seeds are paired by
seed (the same data order and initialisation draws), others compared unpaired. The
*improvement* is oriented so that positive means "as claimed": ``worse - better`` for
a loss (mode ``min``), ``better - worse`` for an accuracy (``max``).

  t interval     paired: mean of the per-seed improvements +- t(1 - a/2, n-1) sd / sqrt(n);
                 unpaired: Welch's interval (scipy.stats.ttest_ind, equal_var=False)
  bootstrap      the 2.5% and 97.5% percentiles of the mean improvement over resamples
                 of the seeds (paired) or of each arm (unpaired), seeded: deterministic
  effect size    Hedges' g (mean / sd of the improvements for paired arms, the pooled-sd
                 standardised difference otherwise, times the small-sample correction)
                 and the probability that the claimed-better arm beats the other
                 (per seed when paired, over all pairs of seeds otherwise)

Two ways to decide, one per way the seeds were chosen (ours; the issue-25 notes in
BENCHMARKS.md measure both):

  fixed      the seeds were fixed before the run: the two-sided t-test's p (paired or Welch)
  sequential seeds were added until claims were decided (``--until-decided``): optional
             stopping, so a fixed-sample p would be read at a time chosen by the data. The
             paired improvements, in seed order, are tested with the scale-invariant
             mixture e-process of the one-sample t-test (Lai 1976; the Bayes factor with a
             right-Haar prior on sd and N(0, g sd^2) on the mean, an e-process in its own
             filtration: Perez-Ortiz, Lardy, de Heide & Grunwald 2024; Wang & Ramdas 2023).
             By Ville's inequality P(some n has E_n >= 1/a) <= a under the null, so
             p = 1 / max_n E_n is valid at whatever time the seeds stopped, and inverting
             it gives a confidence sequence: the running intersection over n of
             mean_n +- c_n(a) sd_n / sqrt(n). Needs arms paired by seed.

Across a family (a table's claims, or a spec's), ``decide`` applies Holm's step-down
(Holm 1979, as statsmodels' ``multipletests(method="holm")``) to those p-values - valid
for the sequential ones too, since each is valid at any random time - and shows every
claim's interval at the level Holm tested it at, a / (m - r) with r the claims it
decided. That interval is the one the verdict is read from, so the two never disagree:

  equivalent    the interval lies within +-margin (a practical margin declared before the run)
  reproduced    the interval lies above 0 (and is not within the margin)
  reversed      the interval lies below 0
  inconclusive  otherwise, with the true reason: fewer than two seeds, no spread (every seed
                differs by the same amount: nothing to test against), the interval still
                contains 0 (and reaches past the margin), or the seed budget was reached

Seeds needed: the seeds per arm at which the test would decide the observed effect size
with 80% power at the claim's level (noncentral t; for the sequential test against its
boundary c_n, ignoring the earlier looks: a rough guide).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP = 10_000
# The sequential test's prior scale: N(0, g) on the effect size mean / sd. Chosen by simulating the
# default schedule (3 seeds, +2 a round, at most 10) for g in 0.5-8 on effects of 1 and 1.5 sd, a
# lone claim and a family of 18, before any result was read: 2-4 gave the most power, 4 the most
# for a family of 18 (BENCHMARKS.md, issue 25).
PRIOR_G = 4.0

FIXED, SEQUENTIAL = "fixed", "sequential"
EQUIVALENT, REPRODUCED, REVERSED, INCONCLUSIVE = "equivalent", "reproduced", "reversed", "inconclusive"
# why a claim is inconclusive
FEW_SEEDS = "fewer than 2 completed seeds in an arm"
NO_SPREAD = "no spread: every seed differs by the same amount, nothing to test the difference against"
CONTAINS_ZERO = "its interval contains 0"
STRADDLES = "its interval contains 0 and reaches past the margin"
BUDGET = "the seed budget is reached and its interval still contains 0"
UNPAIRED = "the sequential test needs arms paired by seed"
SEVERAL = "a selector picks several configurations: a claim compares one with another (name the field they differ in)"


@dataclass(frozen=True)
class Comparison:
    n_better: int
    n_worse: int
    paired: bool
    improvement: float  # mean, oriented: > 0 means as claimed
    t_low: float  # the unadjusted 95% t interval
    t_high: float
    boot_low: float
    boot_high: float
    p: float  # two-sided, unadjusted, fixed-sample
    hedges_g: float
    p_superior: float  # probability the claimed-better arm is better
    # paired: the per-seed improvements in seed order; unpaired: the two arms, oriented
    values: tuple = ()

    @property
    def n(self) -> int:
        return min(self.n_better, self.n_worse)

    @property
    def spread(self) -> bool:
        """Whether the improvements vary at all (else nothing to test a difference against)."""
        return math.isfinite(self.p) and self.t_low < self.t_high

    def t_interval(self, alpha: float) -> tuple[float, float]:
        """The (1 - alpha) t interval of the improvement (paired, or Welch's)."""
        if not self.spread:
            return self.improvement, self.improvement
        if self.paired:
            d = np.asarray(self.values)
            half = stats.t.ppf(1 - alpha / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
            return self.improvement - half, self.improvement + half
        ci = stats.ttest_ind(*self.values, equal_var=False).confidence_interval(1 - alpha)
        return float(ci.low), float(ci.high)


def compare(better: dict, worse: dict, mode: str = "min", seed: int = 0) -> Comparison | None:
    """``better`` / ``worse``: seed -> metric value of the arm claimed better / worse. None
    when either arm has fewer than two values (nothing to estimate a spread from)."""
    if len(better) < 2 or len(worse) < 2:
        return None
    sign = -1.0 if mode == "min" else 1.0
    shared = sorted(set(better) & set(worse))
    rng = np.random.default_rng(seed)
    if len(shared) >= 2 and len(shared) == len(better) == len(worse):
        d = sign * (np.array([better[s] for s in shared]) - np.array([worse[s] for s in shared]))
        n = len(d)
        mean, sd = d.mean(), d.std(ddof=1)
        if sd == 0:  # every seed moved by the same amount: no spread to test against
            low = high = mean
            p = math.nan if mean != 0 else 1.0
        else:
            half = stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n)
            low, high = mean - half, mean + half
            p = float(stats.ttest_1samp(d, 0.0).pvalue)
        boot = d[rng.integers(0, n, (BOOTSTRAP, n))].mean(1)
        g = _correction(n - 1) * mean / sd if sd > 0 else math.copysign(math.inf, mean) if mean else 0.0
        superior = float((d > 0).mean() + 0.5 * (d == 0).mean())
        return Comparison(n, n, True, float(mean), float(low), float(high), *_percentiles(boot), p, float(g),
                          superior, tuple(map(float, d)))
    a = sign * np.array(list(better.values()), float)  # oriented so that larger is as claimed
    b = sign * np.array(list(worse.values()), float)
    mean = a.mean() - b.mean()
    test = stats.ttest_ind(a, b, equal_var=False)
    if np.isfinite(test.statistic):
        ci = test.confidence_interval(1 - ALPHA)
        low, high, p = float(ci.low), float(ci.high), float(test.pvalue)
    else:  # both arms constant
        low = high = mean
        p = math.nan if mean != 0 else 1.0
    boot = a[rng.integers(0, len(a), (BOOTSTRAP, len(a)))].mean(1) - b[rng.integers(0, len(b), (BOOTSTRAP, len(b)))].mean(1)
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    d_cohen = mean / pooled if pooled > 0 else math.copysign(math.inf, mean) if mean else 0.0
    g = _correction(len(a) + len(b) - 2) * d_cohen if math.isfinite(d_cohen) else d_cohen
    superior = float(((a[:, None] > b[None]).mean() + 0.5 * (a[:, None] == b[None]).mean()))
    return Comparison(len(a), len(b), False, float(mean), low, high, *_percentiles(boot), p, float(g), superior,
                      (tuple(map(float, a)), tuple(map(float, b))))


def _percentiles(boot: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def _correction(df: int) -> float:
    """Hedges' small-sample correction J(df)."""
    return math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2)) if df > 1 else 1.0


# -- the sequential test ---------------------------------------------------------------------------

def e_values(d, g: float = PRIOR_G) -> np.ndarray:
    """E_n for n = 1..len(d): the t-test's mixture Bayes factor on the first n values of ``d``
    against mean 0, (1 + n g)^(-1/2) [(1 + t^2/nu) / (1 + t^2/(nu (1 + n g)))]^(n/2), nu = n - 1
    (E_1 = 1: one value says nothing about a mean relative to its sd)."""
    d = np.asarray(d, float)
    out = np.ones(len(d))
    for n in range(2, len(d) + 1):
        x = d[:n]
        sd = x.std(ddof=1)
        nu, k = n - 1, 1 + n * g
        if sd == 0:  # t infinite: the factor's limit
            out[n - 1] = k ** ((n - 1) / 2) if x.mean() != 0 else 1.0
            continue
        t2 = n * x.mean() ** 2 / sd ** 2
        out[n - 1] = k ** -0.5 * ((1 + t2 / nu) / (1 + t2 / (nu * k))) ** (n / 2)
    return out


def anytime_p(d, g: float = PRIOR_G) -> float:
    """The sequential p-value of mean 0 after the values ``d`` (in the order they came):
    P(it ever falls to a or below) <= a under the null."""
    return float(min(1.0, 1.0 / e_values(d, g).max()))


def boundary(n: int, alpha: float, g: float = PRIOR_G) -> float:
    """c_n(alpha): E_n reaches 1/alpha exactly when |t| >= c_n (inf: it cannot at this n)."""
    if n < 2:
        return math.inf
    nu, k = n - 1, 1 + n * g
    y = (math.sqrt(k) / alpha) ** (2 / n)
    return math.sqrt(nu * (y - 1) / (1 - y / k)) if y < k else math.inf


def sequence_interval(d, alpha: float, g: float = PRIOR_G) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence of the mean after the values ``d``: the running
    intersection over n of mean_n +- c_n(alpha) sd_n / sqrt(n). It excludes 0 exactly when
    ``anytime_p(d) <= alpha``."""
    d = np.asarray(d, float)
    low, high = -math.inf, math.inf
    for n in range(2, len(d) + 1):
        x = d[:n]
        half = boundary(n, alpha, g) * x.std(ddof=1) / math.sqrt(n)
        if math.isfinite(half):
            low, high = max(low, x.mean() - half), min(high, x.mean() + half)
    if low > high:  # the intersection emptied (it can, by chance): the last mean is the best guess
        low = high = float(d.mean())
    return float(low), float(high)


# -- a family of claims ------------------------------------------------------------------------------

def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Decision:
    verdict: str
    low: float  # the interval the verdict was read from (nan when nothing could be tested)
    high: float
    level: float  # its confidence level, 1 - alpha / (m - r)
    p: float | None  # the test's raw p (fixed-sample or sequential)
    p_holm: float | None
    why: str | None = None  # why inconclusive
    seeds_needed: int | None = None


def test_p(c: Comparison, procedure: str) -> float:
    """The p-value ``procedure`` decides with (nan: untestable)."""
    if procedure == SEQUENTIAL:
        return anytime_p(c.values) if c.paired and c.spread else math.nan
    return c.p if c.spread else math.nan


def decide(comparisons: list[Comparison | None], procedure: str = FIXED, margins: list[float | None] | None = None,
           budget_reached: list[bool] | None = None) -> list[Decision]:
    """Verdicts of one family (Holm within it). ``margins``: each claim's practical margin in
    the metric's units (None: none declared); ``budget_reached``: whether a claim's arms have
    every seed the sequential run could give them."""
    m_all = len(comparisons)
    margins = margins or [None] * m_all
    budget_reached = budget_reached or [False] * m_all
    ps = [test_p(c, procedure) if c is not None else math.nan for c in comparisons]
    tested = [i for i, p in enumerate(ps) if math.isfinite(p)]
    adjusted = dict(zip(tested, holm([ps[i] for i in tested])))
    rejected = sum(adjusted[i] < ALPHA for i in tested)
    alpha = ALPHA / (len(tested) - rejected) if len(tested) > rejected else ALPHA
    out = []
    for i, c in enumerate(comparisons):
        if c is None:
            out.append(Decision(INCONCLUSIVE, math.nan, math.nan, 1 - alpha, None, None, FEW_SEEDS))
            continue
        if i not in adjusted:
            why = UNPAIRED if procedure == SEQUENTIAL and c.spread else NO_SPREAD
            out.append(Decision(INCONCLUSIVE, c.improvement, c.improvement, 1 - alpha, None, None, why))
            continue
        low, high = sequence_interval(c.values, alpha) if procedure == SEQUENTIAL else c.t_interval(alpha)
        margin = margins[i]
        if margin is not None and -margin < low and high < margin:
            verdict, why = EQUIVALENT, None
        elif low > 0 or high < 0:
            verdict, why = (REPRODUCED if low > 0 else REVERSED), None
        else:
            verdict = INCONCLUSIVE
            why = BUDGET if procedure == SEQUENTIAL and budget_reached[i] else STRADDLES if margin is not None \
                else CONTAINS_ZERO
        needed = _seeds_needed(c, procedure, alpha) if verdict == INCONCLUSIVE else None
        out.append(Decision(verdict, low, high, 1 - alpha, ps[i], adjusted[i], why, needed))
    return out


def _seeds_needed(c: Comparison, procedure: str, alpha: float, limit: int = 1000) -> int | None:
    """Seeds per arm at which the observed effect size would be decided with 80% power."""
    effect = c.hedges_g / _correction(c.n - 1 if c.paired else c.n_better + c.n_worse - 2)
    if not math.isfinite(effect) or effect == 0:
        return None
    n = np.arange(2, limit + 1)
    df = n - 1 if c.paired else 2 * n - 2
    nc = abs(effect) * (np.sqrt(n) if c.paired else np.sqrt(n / 2))
    crit = (np.array([boundary(k, alpha) for k in n]) if procedure == SEQUENTIAL
            else stats.t.ppf(1 - alpha / 2, df))
    with np.errstate(invalid="ignore"):
        power = np.where(np.isfinite(crit), stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc), 0.0)
    enough = np.flatnonzero(power >= POWER)
    return int(n[enough[0]]) if len(enough) else limit
