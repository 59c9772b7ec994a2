"""What a study design can detect: the minimum detectable difference of a paired contrast.

Two losses are compared on the same cases, every case scored by every trained model (run) of
each, so cases and runs are crossed (:mod:`hie_core.report.analysis.variance`). The spread of the mean
paired difference over ``n`` cases and ``r`` runs per case has three parts::

    Var(mean) = sd_case**2 / n + sd_run**2 / n_models + sd_case_run**2 / (n r)

with ``n_models = r`` when every run scores every case, and ``n_models = folds * r`` for the
out-of-fold predictions of a cross-validated study (each fold model scores ``n / folds`` of the
cases, so its shift is shared by those only). ``sd_case`` sets a floor that more seeds cannot
pass: with infinitely many runs ``Var(mean) = sd_case**2 / n`` (:func:`case_floor`).

The minimum detectable difference (:func:`mdd`; two-sided level ``alpha / n_tests``, the first
Holm step of a family of ``n_tests``; power ``power``) uses t quantiles on the Satterthwaite df of
that variance, computed from the expected mean squares of the design
(:func:`hie_core.report.analysis.variance.satterthwaite`), the same df the study's t test will have::

    mdd = (t(1 - alpha / (2 n_tests), df) + t(power, df)) * sqrt(Var(mean))

Before any run, :func:`default_noise` uses the components measured on the quick CPU study (five
Dice-family losses, 15 synthetic test cases x 2 runs; SDs of a paired Dice difference: case
0.026, run 0.011, case x run 0.065). :func:`noise_from_matrix` estimates them from a study's
per-case, per-run differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hie_core.report.analysis.variance import detectable, satterthwaite, variance_components

__all__ = [
    "ALPHA",
    "DEFAULT_NOISE",
    "POWER",
    "TARGET_DICE",
    "NoiseModel",
    "case_floor",
    "default_noise",
    "margins_for",
    "mdd",
    "noise_from_matrix",
    "se_df",
]

#: Family-wise error rate of every test family.
ALPHA = 0.05
#: Power at which the minimum detectable difference is quoted.
POWER = 0.8
#: The difference in mean Dice a design should detect to tell these losses apart.
TARGET_DICE = 0.02
#: SDs of a paired Dice difference (case, run, case x run) measured on the quick CPU study: five
#: Dice-family losses, 15 synthetic test cases with a lesion x 2 runs, method of moments.
DEFAULT_NOISE = (0.026, 0.011, 0.065)


@dataclass(frozen=True)
class NoiseModel:
    """The variance components of a paired per-case, per-run difference (SDs, in the metric's unit).

    Attributes:
        sd_case: between cases (does not shrink with more runs).
        sd_run: between trained models, shared by all the cases a model scores.
        sd_case_run: the rest (a model's case-by-case deviation).
        source: where the numbers come from, for a reader.
    """

    sd_case: float
    sd_run: float
    sd_case_run: float
    source: str

    def __post_init__(self) -> None:
        for name in ("sd_case", "sd_run", "sd_case_run"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def default_noise() -> NoiseModel:
    """The noise before any run: :data:`DEFAULT_NOISE`."""
    case, run, case_run = DEFAULT_NOISE
    return NoiseModel(case, run, case_run, source="default: measured on the quick CPU study (synthetic; five Dice-family "
                      "losses, 15 cases x 2 runs)")  # fmt: skip


def se_df(noise: NoiseModel, n_cases: int, n_runs: int, folds: int = 0) -> tuple[float, float]:
    """SE of the mean paired difference and its Satterthwaite df at a design (see the module docstring).

    Args:
        noise: The components.
        n_cases: Cases the contrast is paired over.
        n_runs: Runs (seeds) scoring each case.
        folds: 0 when every run scores every case; K >= 2 for out-of-fold predictions (K models per seed).
    """
    if n_cases < 2 or n_runs < 1:
        return math.nan, math.nan
    n, r = n_cases, n_runs
    models = r * folds if folds >= 2 else r
    ms_case = r * noise.sd_case**2 + noise.sd_case_run**2  # expected mean squares of the design
    ms_run = (n * r / models) * noise.sd_run**2 + noise.sd_case_run**2
    ms_res = noise.sd_case_run**2
    scale = 1.0 / (n * r)
    terms = [(scale, ms_case, n - 1)]
    if models > 1:
        terms += [(scale, ms_run, models - 1), (-scale, ms_res, (n - 1) * (r - 1) if r > 1 else n - 1)]
    else:  # one model: its shift is a constant the data cannot see; the test conditions on it
        terms = [(scale, ms_case, n - 1)]
    var, df = satterthwaite(terms)
    return math.sqrt(var), df


def mdd(noise: NoiseModel, n_cases: int, seeds: int, n_tests: int = 1, alpha: float = ALPHA, power: float = POWER,
        folds: int = 0) -> float:  # fmt: skip
    """Minimum detectable mean paired difference at a design (t quantiles; NaN under 2 cases).

    Args:
        noise: The components.
        n_cases: Cases the contrast is paired over.
        seeds: Runs per case.
        n_tests: Size of the Holm family (its first step is the strictest: ``alpha / n_tests``).
        alpha, power: Family-wise level and power.
        folds: See :func:`se_df`.
    """
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    se, df = se_df(noise, n_cases, seeds, folds)
    return detectable(se, df, n_tests, alpha, power)


def case_floor(
    noise: NoiseModel, n_cases: int, n_tests: int = 1, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The detectable difference with infinitely many runs: ``sd_case / sqrt(n)`` on ``n - 1`` df (NaN under 2 cases)."""
    if n_cases < 2:
        return math.nan
    return detectable(noise.sd_case / math.sqrt(n_cases), n_cases - 1, n_tests, alpha, power)


def noise_from_matrix(diff: np.ndarray, source: str) -> NoiseModel:
    """The components of a ``(cases, runs)`` difference matrix (:func:`hie_core.report.analysis.variance.variance_components`).

    Raises:
        ValueError: fewer than 2 cases or fewer than 2 runs (the run part cannot be estimated).
    """
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError(f"need at least 2 cases x 2 runs to estimate the components, got shape {d.shape}")
    c = variance_components(d)
    return NoiseModel(c.sd_case, c.sd_run, c.sd_case_run, source)


def margins_for(margin: float | None) -> dict[str, float] | None:
    """A ``--margin`` option (a difference in Dice) as equivalence margins of Dice and NSD; None stays None.

    Raises:
        hie_core.errors.ConfigError: a margin outside (0, 1).
    """
    from hie_core.errors import ConfigError

    if margin is None:
        return None
    if not 0 < margin < 1:
        raise ConfigError(f"--margin must be between 0 and 1 (a difference in Dice), got {margin}")
    return {"dice": float(margin), "nsd": float(margin)}
