"""The study's statistics: bootstrap intervals, paired comparisons, Holm, the challenge ranking.

Every method is scored on the same cases, so methods are compared by their paired per-case
differences (DESIGN.md, "Statistics we use"):

- :func:`mean_ci`: mean and percentile-bootstrap 95% CI over cases (``scipy.stats.bootstrap``);
- :func:`paired_difference`: mean paired difference, its paired bootstrap 95% CI (cases
  resampled, ``paired=True``) and the Wilcoxon signed-rank p (``scipy.stats.wilcoxon``);
- :func:`holm`: Holm-adjusted p-values over a family of tests
  (``statsmodels.stats.multitest.multipletests``);
- :func:`challenge_ranks`: BONBID-HIE's ranking, the mean of per-metric ranks of the means.

Undefined values (NaN: an MASD with exactly one empty mask) are dropped, pairwise for the
paired statistics, and every result says how many values remained and, when no statistic
could be computed, why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["CONFIDENCE", "N_RESAMPLES", "challenge_ranks", "holm", "mean_ci", "paired_difference"]

CONFIDENCE = 0.95
N_RESAMPLES = 9999


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, paired: bool, seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    res = bootstrap(samples, statistic, paired=paired, vectorized=True, confidence_level=CONFIDENCE,
                    n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def mean_ci(values: Sequence[float], seed: int = 0) -> dict[str, float | int | str]:
    """Mean of the defined values and its percentile-bootstrap 95% CI over them.

    Args:
        values: One value per case; NaN means undefined (skipped and counted).
        seed: Seed of the resampling.

    Returns:
        ``mean``, ``ci_low``, ``ci_high``, ``n`` (defined values), ``n_undefined`` and
        ``reason`` ("" or why there is no mean / no interval: fewer than 2 defined values).

    Raises:
        ValueError: An infinite value (an Inf must never be averaged).
    """
    x = np.asarray(values, dtype=float)
    if np.isinf(x).any():
        raise ValueError("values contain inf; an infinite score must never be averaged")
    kept = x[~np.isnan(x)]
    out = {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": int(kept.size),
           "n_undefined": int(x.size - kept.size), "reason": ""}  # fmt: skip
    if kept.size == 0:
        return {**out, "reason": "no defined value"}
    out["mean"] = float(kept.mean())
    if kept.size < 2:
        return {**out, "reason": "one value: no interval"}
    out["ci_low"], out["ci_high"] = _bootstrap((kept,), _mean, paired=False, seed=seed)
    return out


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a - b, axis=axis)


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, float | int | str]:
    """Paired comparison of two methods on the same cases: ``a - b``.

    Args:
        a, b: Per-case scores of the two methods, in the same case order; a pair with a NaN on
            either side is dropped.
        seed: Seed of the bootstrap.

    Returns:
        ``n_pairs``, ``mean_difference`` (mean of a - b), ``ci_low``/``ci_high`` (paired
        percentile bootstrap over cases), ``p_wilcoxon`` (two-sided signed-rank test; zero
        differences dropped, SciPy's default) and ``reason``: "" or why the test did not run
        (no pairs, one pair, or every difference zero; then ``p_wilcoxon`` is NaN).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be paired 1D arrays, got shapes {a.shape} and {b.shape}")
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("a and b must not contain inf")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    out = {"n_pairs": int(a.size), "mean_difference": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p_wilcoxon": math.nan, "reason": ""}  # fmt: skip
    if a.size == 0:
        return {**out, "reason": "no complete pairs"}
    diff = a - b
    out["mean_difference"] = float(diff.mean())
    if a.size < 2:
        return {**out, "reason": "one pair: no interval, no test"}
    out["ci_low"], out["ci_high"] = _bootstrap((a, b), _mean_difference, paired=True, seed=seed)
    if not diff.any():
        return {**out, "reason": "every paired difference is zero: no test"}
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties and zeros: SciPy switches method itself
        out["p_wilcoxon"] = float(wilcoxon(a, b).pvalue)
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN (a test that did not run) stays NaN and is not in the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    ran = ~np.isnan(p)
    if ran.any():
        out[ran] = multipletests(p[ran], method="holm")[1]
    return out


def challenge_ranks(means: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """BONBID-HIE's ranking: per metric rank the methods by their mean, then average the ranks.

    Args:
        means: One row per ranked method, one column per metric (the method's mean).
        higher_is_better: Metric column -> True (Dice, NSD: descending) or False (MASD).

    Returns:
        Columns ``rank_<metric>`` (1 = best; ties share the average rank; a missing mean ranks
        last) and ``rank_mean``, indexed like ``means``.
    """
    ranks = pd.DataFrame(index=means.index)
    for metric, higher in higher_is_better.items():
        ranks[f"rank_{metric}"] = means[metric].rank(
            ascending=not higher, method="average", na_option="bottom"
        )
    ranks["rank_mean"] = ranks.mean(axis=1)
    return ranks
