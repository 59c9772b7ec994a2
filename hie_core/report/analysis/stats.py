"""The study's resampling and ranking: the pigeonhole bootstrap, Holm, the challenge ranks.

A study scores every case with every trained model (a run) of a method, so runs and cases are
**crossed**: a run's shift is shared by all the cases it scored. The noise model and the tests
built on it are in :mod:`hie_core.report.analysis.variance`; the one bootstrap of the project, the
pigeonhole bootstrap of a ``(cases, runs)`` matrix (Owen 2007), is :mod:`hie_core.bootstrap`,
re-exported here for the report (:func:`pigeonhole_means`, :func:`crossed_ci`,
:func:`percentile_interval`, :func:`resamples`, :data:`~hie_core.bootstrap.CONFIDENCE`). With few runs its run part
is narrow (a percentile interval cannot see a t quantile), so verdicts use the t test of
:mod:`hie_core.report.analysis.variance`, not these intervals. This module adds:

- :func:`p_rank_first`: how often each method has the best mean over pigeonhole resamples of the
  same cases (and the same run draws for methods with as many runs);
- :func:`holm`: Holm-adjusted p-values (``statsmodels``);
- :func:`challenge_ranks`: BONBID-HIE's ranking, the mean of per-metric ranks of the means.

The number of resamples is :func:`resamples`: an argument, else the environment variable
``HIE_BOOTSTRAP_RESAMPLES``, else 9999.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hie_core.bootstrap import (
    CHUNK,
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    RESAMPLES_ENV,
    case_weights,
    check_matrix,
    crossed_ci,
    percentile_interval,
    pigeonhole_means,
    resamples,
    run_weights,
    weighted_means,
)

__all__ = ["CONFIDENCE", "DEFAULT_RESAMPLES", "RESAMPLES_ENV", "challenge_ranks", "crossed_ci", "holm",
           "p_rank_first", "percentile_interval", "pigeonhole_means", "resamples"]  # fmt: skip


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
    ms = [check_matrix(n, matrices[n]) for n in names]
    if not ms or len({m.shape[0] for m in ms}) != 1 or ms[0].shape[0] == 0:
        raise ValueError("every method needs a matrix over the same (at least one) cases")
    rng = np.random.default_rng(seed)
    total, wins = resamples(n_resamples), np.zeros(len(names))
    for start in range(0, total, CHUNK):
        size = min(CHUNK, total - start)
        case_w = case_weights(ms[0].shape[0], size, rng, None)
        run_w = {r: run_weights(r, size, rng) for r in sorted({m.shape[1] for m in ms})}
        means = np.stack([weighted_means(m, case_w, run_w[m.shape[1]]) for m in ms], axis=1)
        means = np.where(np.isnan(means), -np.inf if higher_is_better else np.inf, means)
        best = means.max(axis=1, keepdims=True) if higher_is_better else means.min(axis=1, keepdims=True)
        first = np.isclose(means, best, rtol=0, atol=1e-12)
        wins += (first / first.sum(axis=1, keepdims=True)).sum(axis=0)
    return {n: float(w / total) for n, w in zip(names, wins, strict=True)}
