"""The study's statistics: bootstrap intervals, paired comparisons, Holm, the challenge ranking.

Every method is scored on the same cases, so methods are compared by their paired per-case
differences (DESIGN.md, "Statistics we use"):

- :func:`mean_ci`: mean and percentile-bootstrap 95% CI over cases (``scipy.stats.bootstrap``);
- :func:`paired_difference`: mean paired difference, its paired bootstrap 95% CI (cases
  resampled, ``paired=True``) and the Wilcoxon signed-rank p (``scipy.stats.wilcoxon``);
- :func:`holm`: Holm-adjusted p-values over a family of tests
  (``statsmodels.stats.multitest.multipletests``);
- :func:`challenge_ranks`: BONBID-HIE's ranking, the mean of per-metric ranks of the means;
- :func:`hierarchical_ci`, :func:`paired_contrast`, :func:`p_rank_first`: the study's
  two-level bootstrap (Efron & Tibshirani 1993) over a ``(cases, seeds)`` matrix: cases are
  resampled with replacement and, within each drawn case, its seeds (training runs) too, so the
  interval carries both the case-to-case and the run-to-run spread; the paired contrast adds
  the Wilcoxon signed-rank p (superiority) and the two one-sided tests of equivalence
  (Schuirmann 1987; ``statsmodels.stats.weightstats.ttost_paired``) on the seed-averaged cases.

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

__all__ = ["CONFIDENCE", "N_RESAMPLES", "challenge_ranks", "hierarchical_ci", "holm", "mean_ci", "p_rank_first",
           "paired_contrast", "paired_difference", "unpaired_difference_ci"]  # fmt: skip

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


def _difference_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def unpaired_difference_ci(a: Sequence[float], b: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """Percentile 95% CI of ``mean(a) - mean(b)`` for two independent groups (each resampled on its own)."""
    return _bootstrap((np.asarray(a, dtype=float), np.asarray(b, dtype=float)), _difference_of_means,
                      paired=False, seed=seed)  # fmt: skip


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


_CHUNK = 1000  # resamples drawn at a time (bounds the memory of the two-level bootstrap)


def _check_matrix(name: str, matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 1:
        raise ValueError(f"{name} must be a (cases, seeds) matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} must hold finite values only (leave undefined cases out first)")
    return m


def _resampled_means(matrix: np.ndarray, case_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Means of ``matrix`` over drawn cases (``case_idx`` (B, n)) and, within each, drawn seeds."""
    n_seeds = matrix.shape[1]
    if n_seeds == 1:
        return matrix[case_idx, 0].mean(axis=1)
    seed_idx = rng.integers(0, n_seeds, size=(*case_idx.shape, n_seeds))
    return matrix[case_idx[..., None], seed_idx].mean(axis=(1, 2))


def _draws(n_cases: int, rng: np.random.Generator):
    done = 0
    while done < N_RESAMPLES:
        size = min(_CHUNK, N_RESAMPLES - done)
        yield rng.integers(0, n_cases, size=(size, n_cases))
        done += size


def hierarchical_ci(matrix: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% CI of the grand mean of a ``(cases, seeds)`` matrix, cases then seeds resampled.

    With one seed this is the ordinary case bootstrap. NaN for fewer than 2 cases.
    """
    m = _check_matrix("matrix", matrix)
    if m.shape[0] < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.concatenate([_resampled_means(m, idx, rng) for idx in _draws(m.shape[0], rng)])
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per case and seed ``a - b``; a one-run side (a reference) is broadcast over the other's seeds."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must hold the same cases, got {a.shape[0]} and {b.shape[0]} rows")
    if a.shape[1] == b.shape[1] or 1 in (a.shape[1], b.shape[1]):
        return a - b
    seeds = min(a.shape[1], b.shape[1])  # seeds are independent runs: pair the first ones of each
    return a[:, :seeds] - b[:, :seeds]


def paired_contrast(a: np.ndarray, b: np.ndarray, margin: float = math.nan, seed: int = 0) -> dict:
    """Paired comparison ``a - b`` of two methods scored on the same cases, each over its seeds.

    Args:
        a, b: ``(cases, seeds)`` matrices in the same case order (a reference with one run may
            have one column).
        margin: Equivalence margin (same unit as the scores); NaN: no equivalence test.
        seed: Seed of the bootstrap.

    Returns:
        ``n_cases``, ``n_seeds``, ``estimate`` (mean difference), ``ci_low``/``ci_high``
        (two-level bootstrap, :func:`hierarchical_ci`), ``sd`` (SD of the seed-averaged case
        differences), ``p`` (two-sided Wilcoxon signed-rank on the seed-averaged case
        differences, ``scipy.stats.wilcoxon``), ``p_equivalence`` (TOST against
        ``[-margin, margin]``, ``statsmodels``' ``ttost_paired``) and ``reason`` ("" or why a
        test did not run).
    """
    a, b = _check_matrix("a", a), _check_matrix("b", b)
    diff = _pair(a, b)
    case_diff = diff.mean(axis=1)
    out = {"n_cases": int(diff.shape[0]), "n_seeds": int(diff.shape[1]), "estimate": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "sd": math.nan, "p": math.nan, "p_equivalence": math.nan, "reason": ""}  # fmt: skip
    if diff.shape[0] == 0:
        return {**out, "reason": "no case"}
    out["estimate"] = float(diff.mean())
    if diff.shape[0] < 2:
        return {**out, "reason": "one case: no interval, no test"}
    out["ci_low"], out["ci_high"] = hierarchical_ci(diff, seed)
    out["sd"] = float(case_diff.std(ddof=1))
    if not case_diff.any():
        return {**out, "reason": "every paired difference is zero: no test"}
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties and zeros: SciPy switches method itself
        out["p"] = float(wilcoxon(case_diff).pvalue)
    if math.isfinite(margin) and margin > 0 and out["sd"] > 0:
        from statsmodels.stats.weightstats import ttost_paired

        out["p_equivalence"] = float(ttost_paired(a.mean(axis=1), b.mean(axis=1), -margin, margin)[0])
    return out


def p_rank_first(
    matrices: Mapping[str, np.ndarray], higher_is_better: bool = True, seed: int = 0
) -> dict[str, float]:
    """How often each method has the best mean over two-level bootstrap resamples of the same cases.

    Args:
        matrices: Method -> ``(cases, seeds)`` matrix, every one over the same cases in the same order.
        higher_is_better: Direction of the score.
        seed: Seed of the bootstrap.

    Returns:
        Method -> share of resamples in which it ranked first (ties share the resample).
    """
    names = list(matrices)
    ms = [_check_matrix(n, matrices[n]) for n in names]
    if not ms or len({m.shape[0] for m in ms}) != 1:
        raise ValueError("every method needs a matrix over the same cases")
    rng = np.random.default_rng(seed)
    wins = np.zeros(len(names))
    for idx in _draws(ms[0].shape[0], rng):
        means = np.stack([_resampled_means(m, idx, rng) for m in ms], axis=1)
        best = means.max(axis=1, keepdims=True) if higher_is_better else means.min(axis=1, keepdims=True)
        first = np.isclose(means, best, rtol=0, atol=1e-12)
        wins += (first / first.sum(axis=1, keepdims=True)).sum(axis=0)
    return {n: float(w / N_RESAMPLES) for n, w in zip(names, wins, strict=True)}
