"""The statistics of one directed comparison over seeds, and a correction across several.

``compare(better, worse, mode)`` takes a metric's values of two arms keyed by seed and
says how sure we are that the first is better: arms that share seeds are paired by
seed (the same data order and initialisation draws), others compared unpaired. The
*improvement* is oriented so that positive means "as claimed": ``worse - better`` for
a loss (mode ``min``), ``better - worse`` for an accuracy (``max``).

  t interval     paired: mean of the per-seed improvements +- t(0.975, n-1) sd / sqrt(n);
                 unpaired: Welch's interval (scipy.stats.ttest_ind, equal_var=False)
  bootstrap      the 2.5% and 97.5% percentiles of the mean improvement over resamples
                 of the seeds (paired) or of each arm (unpaired), seeded: deterministic
  effect size    Hedges' g (mean / sd of the improvements for paired arms, the pooled-sd
                 standardised difference otherwise, times the small-sample correction)
                 and the probability that the claimed-better arm beats the other
                 (per seed when paired, over all pairs of seeds otherwise)
  seeds needed   the seeds per arm at which a t-test of the observed effect size has
                 80% power at the 5% level (noncentral t); None when already decided or
                 when the arms do not differ at all

Seeds that all differ by the same amount (common when an accuracy is counted on few
videos) leave no spread to test a difference against: p is NaN and the claim stays
*inconclusive* ("no spread"), however large the difference.

``holm`` adjusts the p-values of a family of comparisons (Holm 1979, as
statsmodels' ``multipletests(method="holm")``). A verdict uses the adjusted p-value:
*reproduced* (< 0.05 and the improvement positive), *reversed* (< 0.05, negative),
else *inconclusive*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Comparison:
    n_better: int
    n_worse: int
    paired: bool
    improvement: float  # mean, oriented: > 0 means as claimed
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float
    p: float  # two-sided, unadjusted
    hedges_g: float
    p_superior: float  # probability the claimed-better arm is better
    seeds_needed: int | None = None

    @property
    def n(self) -> int:
        return min(self.n_better, self.n_worse)


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
                          superior, _seeds_needed(g / _correction(n - 1) if math.isfinite(g) else g, True, p))
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
                      _seeds_needed(d_cohen, False, p))


def _percentiles(boot: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def _correction(df: int) -> float:
    """Hedges' small-sample correction J(df)."""
    return math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2)) if df > 1 else 1.0


def _seeds_needed(effect: float, paired: bool, p: float, limit: int = 1000) -> int | None:
    """Seeds per arm for 80% power to detect ``effect`` (Cohen's d or d_z) at the 5% level."""
    if p < ALPHA or not math.isfinite(effect) or effect == 0:  # decided, or no effect to resolve
        return None
    for n in range(2, limit + 1):
        df = n - 1 if paired else 2 * n - 2
        nc = abs(effect) * (math.sqrt(n) if paired else math.sqrt(n / 2))
        crit = stats.t.ppf(1 - ALPHA / 2, df)
        if stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc) >= POWER:
            return n
    return limit


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def verdict(c: Comparison | None, adjusted_p: float | None) -> str:
    if c is None or adjusted_p is None or adjusted_p >= ALPHA:
        return "inconclusive"
    return "reproduced" if c.improvement > 0 else "reversed"
