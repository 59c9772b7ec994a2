"""The project's one bootstrap: the pigeonhole bootstrap of a ``(cases, runs)`` matrix.

A study scores every case with every trained model (a run) of a method, so runs and cases are
**crossed**: a run's shift is shared by all the cases it scored. The pigeonhole bootstrap for
crossed designs (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)) draws cases and
runs with replacement **independently**; a resample's statistic is the mean of the cells
(case, run) the two draws pick (a case drawn twice and a run drawn twice give that cell four
times). With one run it is the ordinary bootstrap of the cases. Its variance of the grand mean is
that of the crossed model plus a small excess in the case x run part (Owen: conservative by about
``2 sd_case_run**2 / (n r)``); for an additive matrix ``a_case + b_run`` it is exactly
``var(a) / n + var(b) / r`` (population variances), the check the tests make.

- :func:`pigeonhole_means`: the resampled grand means (per group of cases when asked);
- :func:`percentile_interval`: the percentile interval of resampled values;
- :func:`crossed_ci`: both at once, the interval of a matrix's grand mean;
- :func:`resamples`: how many resamples: an argument, else the environment variable
  ``HIE_BOOTSTRAP_RESAMPLES``, else 9999.

It lives in the core, below :mod:`hie_core.metrics` (a run's summary) and
:mod:`hie_core.report.analysis.stats` (the study's tables), which both use it. A matrix cell that is NaN
(an MASD with one mask empty) is skipped: a resample's mean is then the mean of its defined cells.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "RESAMPLES_ENV",
    "CHUNK",
    "case_weights",
    "check_matrix",
    "crossed_ci",
    "percentile_interval",
    "pigeonhole_means",
    "resamples",
    "run_weights",
    "weighted_means",
]

#: Coverage of every interval unless a caller asks for another.
CONFIDENCE = 0.95
#: Bootstrap resamples when neither an argument nor :data:`RESAMPLES_ENV` says otherwise.
DEFAULT_RESAMPLES = 9999
#: Environment variable that sets the number of bootstrap resamples (tests use a few hundred).
RESAMPLES_ENV = "HIE_BOOTSTRAP_RESAMPLES"
#: The fewest resamples a percentile 95% interval can use.
MIN_RESAMPLES = 99
#: Resamples drawn at a time (bounds memory).
CHUNK = 2000


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
    if n < MIN_RESAMPLES:
        raise ValueError(
            f"bootstrap resamples must be at least {MIN_RESAMPLES}, got {n} (set {RESAMPLES_ENV} or the argument)"
        )
    return int(n)


def check_matrix(name: str, matrix: np.ndarray) -> np.ndarray:
    """``matrix`` as a float ``(cases, runs)`` array with at least one run and no infinite cell."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 1:
        raise ValueError(f"{name} must be a (cases, runs) matrix, got shape {m.shape}")
    if np.isinf(m).any():
        raise ValueError(f"{name} holds an infinite value; an infinite score must never be averaged")
    return m


def case_weights(
    n_cases: int, size: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
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


def run_weights(n_runs: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, n_runs)`` draw counts of runs (all ones with one run: nothing to resample)."""
    if n_runs == 1:
        return np.ones((size, 1))
    return rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=size).astype(float)


def weighted_means(m: np.ndarray, case_w: np.ndarray, run_w: np.ndarray) -> np.ndarray:
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
    m = check_matrix("matrix", matrix)
    n_cases, n_runs = m.shape
    if n_cases == 0:
        raise ValueError("the matrix has no case")
    labels = None if groups is None else np.asarray(groups)
    if labels is not None and labels.shape != (n_cases,):
        raise ValueError(f"groups must hold one label per case ({n_cases}), got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    total, out = resamples(n_resamples), []
    for start in range(0, total, CHUNK):
        size = min(CHUNK, total - start)
        case_w, run_w = case_weights(n_cases, size, rng, labels), run_weights(n_runs, size, rng)
        if labels is None:
            out.append(weighted_means(m, case_w, run_w))
        else:
            out.append(
                np.stack([weighted_means(m, case_w * (labels == g), run_w) for g in np.unique(labels)], 1)
            )
    return np.concatenate(out)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` percentile interval of resampled values (NaN resamples dropped; NaN if none is left).

    Raises:
        ValueError: ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(v, [tail, 1 - tail])
    return float(low), float(high)


def crossed_ci(matrix: np.ndarray, n_resamples: int | None = None, seed: int = 0,
               confidence: float = CONFIDENCE) -> tuple[float, float]:  # fmt: skip
    """Percentile CI of the grand mean of a ``(cases, runs)`` matrix, cases and runs resampled independently.

    With one run (a ``(cases, 1)`` matrix) this is the ordinary case bootstrap. NaN for fewer than
    2 cases with a defined cell.
    """
    m = check_matrix("matrix", matrix)
    if int((~np.isnan(m)).any(axis=1).sum()) < 2:
        return math.nan, math.nan
    return percentile_interval(pigeonhole_means(m, n_resamples, seed), confidence)
