"""The study's resampling and ranking: one bootstrap (the pigeonhole bootstrap), Holm, the challenge ranks.

A study scores every case with every trained model (a run) of a method, so runs and cases are
**crossed**: a run's shift is shared by all the cases it scored. The noise model and the tests
built on it are in :mod:`hie_core.report.variance`; this module resamples:

- :func:`pigeonhole_means`: the pigeonhole bootstrap for crossed designs (Owen 2007, "The
  pigeonhole bootstrap", Ann. Appl. Stat. 1(2)): cases and runs are drawn with replacement
  **independently**, and a resample's statistic is the mean of the cells (case, run) the two
  draws pick (a case drawn twice and a run drawn twice give that cell four times). Its variance
  of the grand mean is that of the crossed model plus a small excess in the case x run part
  (Owen: conservative by about ``2 sd_case_run**2 / (n r)``); with few runs the run part is
  narrow (a percentile interval cannot see a t quantile), so verdicts use the t test of
  :mod:`hie_core.report.variance`, not these intervals;
- :func:`crossed_ci`: the percentile 95% interval of a ``(cases, runs)`` matrix's grand mean;
- :func:`p_rank_first`: how often each method has the best mean over pigeonhole resamples of the
  same cases (and the same run draws for methods with as many runs);
- :func:`holm`: Holm-adjusted p-values (``statsmodels``);
- :func:`challenge_ranks`: BONBID-HIE's ranking, the mean of per-metric ranks of the means.

The number of resamples is :func:`resamples`: an argument, else the environment variable
``HIE_BOOTSTRAP_RESAMPLES``, else 9999. A matrix cell that is NaN (an MASD with one mask empty) is
skipped: a resample's mean is then the mean of its defined cells.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["CONFIDENCE", "DEFAULT_RESAMPLES", "RESAMPLES_ENV", "challenge_ranks", "crossed_ci", "holm",
           "p_rank_first", "pigeonhole_means", "resamples"]  # fmt: skip

CONFIDENCE = 0.95
#: Bootstrap resamples when neither an argument nor :data:`RESAMPLES_ENV` says otherwise.
DEFAULT_RESAMPLES = 9999
#: Environment variable that sets the number of bootstrap resamples (tests use a few hundred).
RESAMPLES_ENV = "HIE_BOOTSTRAP_RESAMPLES"
_CHUNK = 2000  # resamples drawn at a time (bounds memory)


def resamples(n: int | None = None) -> int:
    """The number of bootstrap resamples: ``n``, else ``$HIE_BOOTSTRAP_RESAMPLES``, else 9999.

    Raises:
        ValueError: a count below 99 (a percentile 95% interval needs at least that many), or an
            environment value that is not an integer (the message names the variable).
    """
    if n is None:
        text = os.environ.get(RESAMPLES_ENV, "").strip()
        if not text:
            return DEFAULT_RESAMPLES
        try:
            n = int(text)
        except ValueError:
            raise ValueError(
                f"{RESAMPLES_ENV}={text!r} is not an integer; set it to e.g. 999 or unset it"
            ) from None
    if n < 99:
        raise ValueError(
            f"bootstrap resamples must be at least 99, got {n} (set {RESAMPLES_ENV} or the argument)"
        )
    return int(n)


def _check_matrix(name: str, matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 1:
        raise ValueError(f"{name} must be a (cases, runs) matrix, got shape {m.shape}")
    if np.isinf(m).any():
        raise ValueError(f"{name} holds an infinite value; an infinite score must never be averaged")
    return m


def _case_weights(n_cases: int, size: int, rng: np.random.Generator, groups: np.ndarray | None) -> np.ndarray:
    """``(size, n_cases)`` draw counts: cases drawn with replacement (within each group when given)."""
    if groups is None:
        return rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=size).astype(float)
    weights = np.zeros((size, n_cases))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        weights[:, members] = rng.multinomial(
            members.size, np.full(members.size, 1.0 / members.size), size=size
        )
    return weights


def _run_weights(n_runs: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, n_runs)`` draw counts of runs (all ones with one run: nothing to resample)."""
    if n_runs == 1:
        return np.ones((size, 1))
    return rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=size).astype(float)


def _weighted_means(m: np.ndarray, case_w: np.ndarray, run_w: np.ndarray) -> np.ndarray:
    """Mean of the defined cells of ``m`` (cases, runs) under each resample's weights: ``(size,)``."""
    defined = ~np.isnan(m)
    total = ((case_w @ np.where(defined, m, 0.0)) * run_w).sum(axis=1)
    count = ((case_w @ defined.astype(float)) * run_w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def pigeonhole_means(matrix: np.ndarray, n_resamples: int | None = None, seed: int = 0,
                     groups: Sequence | np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Grand means of pigeonhole resamples of a ``(cases, runs)`` matrix (see the module docstring).

    Args:
        matrix: Scores or paired differences, one row per case, one column per run; NaN cells are
            skipped.
        n_resamples: Resamples (:func:`resamples`).
        seed: Seed of the draws (the result is a function of it).
        groups: Optional label per case (length ``cases``): cases are then drawn within their
            group (group sizes fixed) and the mean of each group is returned.

    Returns:
        ``(B,)`` resampled grand means, or ``(B, G)`` per group in sorted label order.
    """
    m = _check_matrix("matrix", matrix)
    n_cases, n_runs = m.shape
    if n_cases == 0:
        raise ValueError("the matrix has no case")
    labels = None if groups is None else np.asarray(groups)
    if labels is not None and labels.shape != (n_cases,):
        raise ValueError(f"groups must hold one label per case ({n_cases}), got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    total, out = resamples(n_resamples), []
    for start in range(0, total, _CHUNK):
        size = min(_CHUNK, total - start)
        case_w, run_w = _case_weights(n_cases, size, rng, labels), _run_weights(n_runs, size, rng)
        if labels is None:
            out.append(_weighted_means(m, case_w, run_w))
        else:
            out.append(
                np.stack([_weighted_means(m, case_w * (labels == g), run_w) for g in np.unique(labels)], 1)
            )
    return np.concatenate(out)


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The :data:`CONFIDENCE` percentile interval of resampled values (NaN resamples dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(v, [tail, 1 - tail])
    return float(low), float(high)


def crossed_ci(matrix: np.ndarray, n_resamples: int | None = None, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% CI of the grand mean of a ``(cases, runs)`` matrix, cases and runs resampled independently.

    With one run this is the ordinary case bootstrap. NaN for fewer than 2 cases with a defined cell.
    """
    m = _check_matrix("matrix", matrix)
    if int((~np.isnan(m)).any(axis=1).sum()) < 2:
        return math.nan, math.nan
    return percentile_interval(pigeonhole_means(m, n_resamples, seed))


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


def p_rank_first(matrices: Mapping[str, np.ndarray], higher_is_better: bool = True, seed: int = 0,
                 n_resamples: int | None = None) -> dict[str, float]:  # fmt: skip
    """How often each method has the best mean over pigeonhole resamples of the same cases.

    Every method's matrix is resampled with the same case draws; methods with the same number of
    runs share the run draws too (runs are paired by seed), a method with another count (a
    one-run reference) gets its own.

    Args:
        matrices: Method -> ``(cases, runs)`` matrix, every one over the same cases in the same order.
        higher_is_better: Direction of the score.
        seed: Seed of the bootstrap.
        n_resamples: Resamples (:func:`resamples`).

    Returns:
        Method -> share of resamples in which it ranked first (ties share the resample).
    """
    names = list(matrices)
    ms = [_check_matrix(n, matrices[n]) for n in names]
    if not ms or len({m.shape[0] for m in ms}) != 1 or ms[0].shape[0] == 0:
        raise ValueError("every method needs a matrix over the same (at least one) cases")
    rng = np.random.default_rng(seed)
    total, wins = resamples(n_resamples), np.zeros(len(names))
    for start in range(0, total, _CHUNK):
        size = min(_CHUNK, total - start)
        case_w = _case_weights(ms[0].shape[0], size, rng, None)
        run_w = {r: _run_weights(r, size, rng) for r in sorted({m.shape[1] for m in ms})}
        means = np.stack([_weighted_means(m, case_w, run_w[m.shape[1]]) for m in ms], axis=1)
        means = np.where(np.isnan(means), -np.inf if higher_is_better else np.inf, means)
        best = means.max(axis=1, keepdims=True) if higher_is_better else means.min(axis=1, keepdims=True)
        first = np.isclose(means, best, rtol=0, atol=1e-12)
        wins += (first / first.sum(axis=1, keepdims=True)).sum(axis=0)
    return {n: float(w / total) for n, w in zip(names, wins, strict=True)}
