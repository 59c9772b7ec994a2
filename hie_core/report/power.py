"""What a study design can detect: the minimum detectable difference of a paired contrast.

Two losses are compared on the same cases, each case scored once per seed (and, in
cross-validation, once per seed by the fold model that did not see it). The per-case paired
difference of two losses then has two sources of spread (DESIGN.md, "Statistics we use"):

- ``case_sd``: how much the true difference varies from case to case; it does not shrink
  with more seeds;
- ``seed_sd``: how much one case's difference moves from one training run (seed) to the next;
  averaged over ``seeds`` runs it shrinks as ``1 / sqrt(seeds)``.

So the SD of a case's seed-averaged difference is ``sqrt(case_sd**2 + seed_sd**2 / seeds)``
(:meth:`NoiseModel.paired_sd`), and with ``n_cases`` cases the minimum detectable difference
(two-sided level ``alpha / n_tests``, the first Holm step of a family of ``n_tests``; power
``power``; normal approximation of the paired test) is::

    mdd = (z(1 - alpha / (2 * n_tests)) + z(power)) * paired_sd(seeds) / sqrt(n_cases)

Before any run, :func:`default_noise` uses the quick CPU study's measurement (paired SD 0.045
Dice at 2 seeds, almost all of it training noise). :func:`noise_from_differences` estimates both
parts from a study's per-run scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "ALPHA",
    "DEFAULT_PAIRED_SD",
    "DEFAULT_SD_SEEDS",
    "POWER",
    "TARGET_DICE",
    "margins_for",
    "NoiseModel",
    "default_noise",
    "mdd",
    "noise_from_differences",
    "required_case_runs",
]

#: Family-wise error rate of every test family.
ALPHA = 0.05
#: Power at which the minimum detectable difference is quoted.
POWER = 0.8
#: The difference in mean Dice a design should detect to tell these losses apart (they differed
#: by 0.006-0.013 in the quick CPU study; DESIGN.md).
TARGET_DICE = 0.02
#: Paired SD of per-case Dice differences between Dice-family losses, cases averaged over
#: :data:`DEFAULT_SD_SEEDS` seeds (the quick CPU study, 16 synthetic test cases; DESIGN.md).
DEFAULT_PAIRED_SD = 0.045
#: Seeds averaged per case in :data:`DEFAULT_PAIRED_SD`.
DEFAULT_SD_SEEDS = 2


@dataclass(frozen=True)
class NoiseModel:
    """Spread of a paired per-case difference: between cases and between seeds (see the module).

    Attributes:
        case_sd: SD of the true per-case difference between cases (does not shrink with seeds).
        seed_sd: SD of one run's per-case difference around its case mean.
        source: Where the numbers come from, for a reader.
    """

    case_sd: float
    seed_sd: float
    source: str

    def __post_init__(self) -> None:
        for name in ("case_sd", "seed_sd"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def paired_sd(self, seeds: int) -> float:
        """SD of one case's difference averaged over ``seeds`` runs."""
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        return math.sqrt(self.case_sd**2 + self.seed_sd**2 / seeds)


def default_noise() -> NoiseModel:
    """The noise before any run: :data:`DEFAULT_PAIRED_SD` at 2 seeds, taken as all seed noise."""
    return NoiseModel(
        case_sd=0.0,
        seed_sd=DEFAULT_PAIRED_SD * math.sqrt(DEFAULT_SD_SEEDS),
        source=f"default: paired SD {DEFAULT_PAIRED_SD} Dice at {DEFAULT_SD_SEEDS} seeds (quick CPU study, "
        "synthetic), taken as training noise",
    )


def _z_sum(n_tests: int, alpha: float, power: float) -> float:
    from scipy.stats import norm

    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    return float(norm.ppf(1 - alpha / (2 * n_tests)) + norm.ppf(power))


def mdd(noise: NoiseModel, n_cases: int, seeds: int, n_tests: int = 1, alpha: float = ALPHA,
        power: float = POWER) -> float:  # fmt: skip
    """Minimum detectable mean paired difference (see the module docstring); NaN without cases.

    Args:
        noise: The spread of the per-case difference.
        n_cases: Cases the contrast is paired over.
        seeds: Runs averaged per case.
        n_tests: Size of the Holm family (its first step is the strictest: ``alpha / n_tests``).
        alpha, power: Family-wise level and power.
    """
    if n_cases < 1:
        return math.nan
    return _z_sum(n_tests, alpha, power) * noise.paired_sd(seeds) / math.sqrt(n_cases)


def required_case_runs(noise: NoiseModel, difference: float, n_tests: int = 1, alpha: float = ALPHA,
                       power: float = POWER) -> float:  # fmt: skip
    """Cases x seeds needed to detect ``difference`` when the noise is all seed noise (``case_sd`` 0).

    With a between-case part, more seeds stop helping once ``seed_sd**2 / seeds`` is small
    against ``case_sd**2``; this is the count of the seed-noise part alone.
    """
    if difference <= 0:
        raise ValueError(f"difference must be positive, got {difference}")
    return (_z_sum(n_tests, alpha, power) * noise.seed_sd / difference) ** 2


def noise_from_differences(differences: pd.DataFrame, source: str) -> NoiseModel:
    """Estimate ``case_sd`` and ``seed_sd`` from per-run paired differences (one-way random effects).

    Args:
        differences: Columns ``case_id``, ``seed`` and ``difference`` (one row per case and
            seed; NaN rows are dropped).
        source: Where the differences come from, for :attr:`NoiseModel.source`.

    Returns:
        ``seed_sd`` from the pooled within-case variance over seeds (0 with one seed per case,
        where it cannot be told apart from the case part), ``case_sd`` from the variance of
        the case means less its seed part (at least 0).

    Raises:
        ValueError: Fewer than 2 cases with a defined difference.
    """
    d = differences.dropna(subset=["difference"])
    groups = d.groupby("case_id")["difference"]
    means, counts = groups.mean(), groups.size()
    if len(means) < 2:
        raise ValueError(f"need differences on at least 2 cases to estimate their spread, got {len(means)}")
    within = groups.var(ddof=1).dropna()
    df_within = (counts[within.index] - 1).sum()
    seed_var = float((within * (counts[within.index] - 1)).sum() / df_within) if df_within > 0 else 0.0
    harmonic = float(len(counts) / np.sum(1.0 / counts))
    case_var = max(float(means.var(ddof=1)) - seed_var / harmonic, 0.0)
    return NoiseModel(case_sd=math.sqrt(case_var), seed_sd=math.sqrt(seed_var), source=source)


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
