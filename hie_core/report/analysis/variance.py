"""The noise model of a study that trains models: cases crossed with runs, and the tests built on it.

A paired contrast ``a - b`` of two methods is a ``(cases, runs)`` matrix of differences ``d_ij``:
every case ``i`` is scored by the same runs ``j`` (trained models, one per seed; run ``j`` of ``a``
is paired with run ``j`` of ``b``; a one-run reference such as the threshold baseline is
subtracted from every run). The model is the two-way random-effects model without replication::

    d_ij = mu + c_i + u_j + e_ij,   Var c = sd_case**2, Var u = sd_run**2, Var e = sd_case_run**2

- ``sd_case``: how the true difference varies from case to case; more runs do not shrink it;
- ``sd_run``: a trained model's shift, shared by every case it scores; more cases do not shrink it;
- ``sd_case_run``: what is left, a run's case-by-case deviation (it includes the measurement noise).

:func:`variance_components` estimates them by the method of moments of the **balanced two-way
design without replication** (the ANOVA mean squares of cases, runs and residual; a negative
estimate is set to 0). The variance of the mean difference over ``n`` cases and ``r`` runs is::

    Var(mean) = sd_case**2 / n + sd_run**2 / r + sd_case_run**2 / (n r)

which, untruncated, equals ``(MS_case + MS_run - MS_res) / (n r)``; its degrees of freedom are
Satterthwaite's (1946) for that combination of mean squares, so they reflect the number of runs
(with 2 runs the run mean square has 1 df). :func:`crossed_test` tests the mean difference with
``t = mean / SE`` on those df (two-sided), and equivalence with the two one-sided t tests (TOST,
Schuirmann 1987) against ``[-margin, margin]``; the 95% interval is the pigeonhole bootstrap's
(:func:`hie_core.report.analysis.stats.crossed_ci`); the Wilcoxon signed-rank p of the run-averaged case
differences is kept as a sensitivity column only. With one run per method (a one-seed study) the
run part cannot be told apart from the case part: ``sd_run`` and ``sd_case_run`` are NaN and the
test is the paired t test of the cases, conditional on the trained models. Out-of-fold scores (split
``cv``) have one column per seed that mixes the seed's fold models: their mean shift is the run part,
the rest of a fold model's shift is counted as case x run (so divided by ``n r`` rather than by the
number of fold models: a slight underestimate when fold models differ much). With two runs the run
mean square has one degree of freedom: the test is then wide, and when a large run spread happens to
look small it is anti-conservative (simulated: 11% rejections at a nominal 5% with 15 cases x 2 runs
and a run SD of 0.04 against a case x run SD of 0.065; 3% with the quick study's components).

:func:`stratum_trend` is claim d's trend test over ordered strata of one method's scores: the
least-squares slope of the run-averaged case scores on the stratum index, tested as a linear
contrast of the stratum means (pooled within-stratum variance, ``cases - strata`` df; a run's
shift shared by all its cases cancels in a contrast within one method), with a pigeonhole
interval that draws cases within their stratum.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from hie_core.report.analysis.stats import crossed_ci, percentile_interval, pigeonhole_means

__all__ = ["MIN_VERDICT_CASES", "NOT_TESTABLE", "Components", "crossed_test", "detectable", "paired_contrast",
           "satterthwaite", "stratum_trend", "untestable_reason", "variance_components"]  # fmt: skip

#: A contrast over fewer cases gets no verdict ("not testable here": the split is too small for
#: the t test's normal approximation and for a bootstrap over cases).
MIN_VERDICT_CASES = 5
#: The verdict of a contrast the design cannot decide; its ``reason`` says why.
NOT_TESTABLE = "not testable here"


@dataclass(frozen=True)
class Components:
    """Variance components of a ``(cases, runs)`` difference matrix (SDs in the scores' unit).

    Attributes:
        n_cases, n_runs: The matrix's shape.
        mean: Grand mean difference.
        sd_case, sd_run, sd_case_run: Method-of-moments SDs (NaN where not estimable).
        se: SE of ``mean`` from the components (see the module docstring).
        df: Satterthwaite degrees of freedom of ``se`` (NaN without an estimate).
    """

    n_cases: int
    n_runs: int
    mean: float
    sd_case: float
    sd_run: float
    sd_case_run: float
    se: float
    df: float

    def as_dict(self) -> dict:
        return asdict(self)


def satterthwaite(terms: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Variance and Satterthwaite df of ``sum(c * ms)`` for ``(c, ms, df)`` terms (mean squares and their df)."""
    var = sum(c * ms for c, ms, _ in terms)
    denom = sum((c * ms) ** 2 / df for c, ms, df in terms if df > 0 and c * ms != 0)
    if var <= 0 or denom <= 0:
        return max(var, 0.0), math.nan
    return var, var**2 / denom


def variance_components(diff: np.ndarray) -> Components:
    """Method-of-moments components of a balanced ``(cases, runs)`` matrix (see the module docstring).

    Args:
        diff: Finite values, one row per case, one column per run.

    Returns:
        :class:`Components`; with one case everything but ``mean`` is NaN; with one run only
        ``sd_case`` (case and case x run confounded), ``se`` and ``df = cases - 1``.
    """
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2 or not np.isfinite(d).all():
        raise ValueError(f"diff must be a finite (cases, runs) matrix, got shape {d.shape}")
    n, r = d.shape
    mean = float(d.mean()) if d.size else math.nan
    if n < 2:
        return Components(n, r, mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    case_means, run_means = d.mean(axis=1), d.mean(axis=0)
    ms_case = r * float(((case_means - mean) ** 2).sum()) / (n - 1)
    if r == 1:
        sd = math.sqrt(ms_case)
        return Components(n, r, mean, sd, math.nan, math.nan, sd / math.sqrt(n), float(n - 1))
    ms_run = n * float(((run_means - mean) ** 2).sum()) / (r - 1)
    resid = d - case_means[:, None] - run_means[None, :] + mean
    ms_res = float((resid**2).sum()) / ((n - 1) * (r - 1))
    tiny = 1e-12 * max(ms_case, ms_run, ms_res)  # rounding, not variance
    var_case = (ms_case - ms_res) / r if ms_case - ms_res > tiny else 0.0
    var_run = (ms_run - ms_res) / n if ms_run - ms_res > tiny else 0.0
    keep_case, keep_run = var_case > 0, var_run > 0
    scale = 1.0 / (n * r)
    var, df = satterthwaite([(scale * keep_case, ms_case, n - 1), (scale * keep_run, ms_run, r - 1),
                             (scale * (1 - keep_case - keep_run), ms_res, (n - 1) * (r - 1))])  # fmt: skip
    return Components(
        n, r, mean, math.sqrt(var_case), math.sqrt(var_run), math.sqrt(ms_res), math.sqrt(var), df
    )


def detectable(se: float, df: float, n_tests: int = 1, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable mean difference of a t test: ``(t(1 - alpha / (2 n_tests)) + t(power)) * se`` on ``df``.

    ``n_tests``: the Holm family's size (its first step, ``alpha / n_tests``, is the strictest).
    NaN where ``se`` or ``df`` is not a positive finite number.
    """
    from scipy.stats import t

    if not (math.isfinite(se) and math.isfinite(df) and df > 0 and se >= 0):
        return math.nan
    return float((t.ppf(1 - alpha / (2 * max(n_tests, 1)), df) + t.ppf(power, df)) * se)


def untestable_reason(res: dict, min_cases: int = MIN_VERDICT_CASES, unit: str = "case") -> str:
    """Why a :func:`crossed_test` result cannot carry a verdict ("" when it can).

    Too few ``unit`` s (``n_cases`` under ``min_cases``: the split is too small), a test that did
    not run (its ``reason``), or a t test without degrees of freedom (its smallest attainable p,
    1, exceeds any level).
    """
    if res["n_cases"] < min_cases:
        return f"split too small: {res['n_cases']} {unit}(s), a verdict needs at least {min_cases}"
    if res["reason"]:
        return res["reason"]
    if not (math.isfinite(res["df"]) and res["df"] > 0):
        return "the smallest attainable p exceeds the level: the t test has no degrees of freedom"
    return ""


def _t_tests(mean: float, se: float, df: float, margin: float) -> tuple[float, float]:
    """Two-sided t p of ``mean`` and the TOST p against ``[-margin, margin]`` (NaN where not defined)."""
    from scipy.stats import t

    if not (math.isfinite(se) and se > 0 and math.isfinite(df) and df > 0):
        return math.nan, math.nan
    p = float(2 * t.sf(abs(mean) / se, df))
    p_eq = math.nan
    if math.isfinite(margin) and margin > 0:
        p_eq = float(max(t.sf((mean + margin) / se, df), t.cdf((mean - margin) / se, df)))
    return p, p_eq


def _wilcoxon(case_diff: np.ndarray) -> float:
    """Two-sided signed-rank p of run-averaged case differences: exact without ties or zeros (n <= 50), else normal."""
    from scipy.stats import wilcoxon

    if case_diff.size < 2 or not case_diff.any():
        return math.nan
    magnitudes = np.abs(case_diff)
    exact = case_diff.size <= 50 and magnitudes.all() and np.unique(magnitudes).size == magnitudes.size
    with warnings.catch_warnings():  # ties or zeros: the normal approximation with SciPy's tie correction
        warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
        return float(wilcoxon(case_diff, method="exact" if exact else "asymptotic").pvalue)


def crossed_test(
    diff: np.ndarray, margin: float = math.nan, seed: int = 0, n_resamples: int | None = None
) -> dict:
    """One paired contrast from its ``(cases, runs)`` difference matrix (finite values; see the module).

    Returns:
        ``n_cases``, ``n_seeds`` (runs), ``estimate`` (mean difference), ``ci_low``/``ci_high``
        (pigeonhole bootstrap), ``se``, ``df``, ``sd_case``, ``sd_run``, ``sd_case_run``, ``p``
        (two-sided crossed t test), ``p_equivalence`` (TOST; NaN without a positive margin),
        ``p_wilcoxon`` (sensitivity: signed-rank test of the run-averaged case differences) and
        ``reason`` ("" or why no test ran).
    """
    d = np.asarray(diff, dtype=float)
    comp = (
        variance_components(d) if d.size else Components(0, d.shape[1] if d.ndim == 2 else 0, *[math.nan] * 6)
    )
    out = {"n_cases": comp.n_cases, "n_seeds": comp.n_runs, "estimate": comp.mean, "ci_low": math.nan,
           "ci_high": math.nan, "se": comp.se, "df": comp.df, "sd_case": comp.sd_case, "sd_run": comp.sd_run,
           "sd_case_run": comp.sd_case_run, "p": math.nan, "p_equivalence": math.nan, "p_wilcoxon": math.nan,
           "reason": ""}  # fmt: skip
    if comp.n_cases == 0:
        return {**out, "reason": "no case"}
    if comp.n_cases < 2:
        return {**out, "reason": "one case: no interval, no test"}
    out["ci_low"], out["ci_high"] = crossed_ci(d, n_resamples, seed)
    out["p_wilcoxon"] = _wilcoxon(d.mean(axis=1))
    if not (comp.se > 0):
        return {**out, "reason": "the differences do not vary: no test"}
    out["p"], out["p_equivalence"] = _t_tests(comp.mean, comp.se, comp.df, margin)
    return out


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per case and run ``a - b``; a one-run side (a reference) is subtracted from every run of the other."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a and b must be (cases, runs) matrices over the same cases, got {a.shape} and {b.shape}"
        )
    if a.shape[1] == b.shape[1] or 1 in (a.shape[1], b.shape[1]):
        return a - b
    runs = min(a.shape[1], b.shape[1])  # run j of each side is seed j's model: pair the seeds both have
    return a[:, :runs] - b[:, :runs]


def paired_contrast(a: np.ndarray, b: np.ndarray, margin: float = math.nan, seed: int = 0,
                    n_resamples: int | None = None) -> dict:  # fmt: skip
    """:func:`crossed_test` of ``a - b`` for two ``(cases, runs)`` score matrices in the same case order.

    A case with a NaN in any run of either side is dropped first (its MASD is undefined).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = _pair(a, b)
    if np.isinf(diff).any():
        raise ValueError("a and b must not contain inf")
    return crossed_test(diff[np.isfinite(diff).all(axis=1)], margin, seed, n_resamples)


def stratum_trend(
    matrix: np.ndarray, levels: np.ndarray, seed: int = 0, n_resamples: int | None = None
) -> dict:
    """Trend of one method's scores over ordered strata (claim d): slope per stratum step, its CI and t test.

    Args:
        matrix: ``(cases, runs)`` finite scores of one method.
        levels: Stratum index of each case (0, 1, 2, ... in the claimed order).

    Returns:
        ``estimate`` (least-squares slope of the run-averaged case scores on the index), ``ci_low``,
        ``ci_high`` (pigeonhole, cases drawn within their stratum), ``se``, ``df`` (cases - strata),
        ``p`` (two-sided t test of the slope as a linear contrast of stratum means), ``means`` and
        ``counts`` per present level, ``n_cases``, ``n_seeds``, ``reason`` ("" or why no test: a
        stratum with one case, fewer than 2 strata, no spread).
    """
    m = np.asarray(matrix, dtype=float)
    x = np.asarray(levels, dtype=int)
    y = m.mean(axis=1)
    present, counts = np.unique(x, return_counts=True)
    means = {int(g): float(y[x == g].mean()) for g in present}
    out = {"n_cases": int(m.shape[0]), "n_seeds": int(m.shape[1]), "estimate": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "se": math.nan, "df": math.nan, "p": math.nan, "means": means,
           "counts": {int(g): int(c) for g, c in zip(present, counts, strict=True)}, "reason": ""}  # fmt: skip
    if present.size < 2 or (counts < 2).any():
        return {**out, "reason": "a trend needs at least 2 strata of at least 2 cases each"}
    xc = x - x.mean()
    sxx = float((xc**2).sum())
    out["estimate"] = float((xc * y).sum() / sxx)
    df = m.shape[0] - present.size
    pooled = (
        sum(float(((y[x == g] - y[x == g].mean()) ** 2).sum()) for g in present) / df if df > 0 else math.nan
    )
    out["df"], out["se"] = float(df), math.sqrt(pooled / sxx) if df > 0 else math.nan
    group_means = pigeonhole_means(m, n_resamples, seed, groups=x)  # (B, strata) in sorted level order
    weights = np.array([c * (g - x.mean()) for g, c in zip(present, counts, strict=True)]) / sxx
    out["ci_low"], out["ci_high"] = percentile_interval(group_means @ weights)
    if not (out["se"] > 0):
        return {**out, "reason": "no spread within the strata: no test"}
    out["p"] = _t_tests(out["estimate"], out["se"], out["df"], math.nan)[0]
    return out
