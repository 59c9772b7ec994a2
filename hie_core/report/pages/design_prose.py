"""What a study's design could detect, and what reaching the analysis plan's target would take, in words.

:func:`design_sentence` reads the primary contrasts of ``hypotheses_<split>.csv`` (their
detectable difference, cases and variance components) and :func:`reach` searches the designs
that would detect the target difference (:data:`hie_core.report.analysis.power.TARGET_DICE`) under those
components, with :func:`hie_core.report.analysis.power.mdd` and its case floor. Used by the abstract
(:mod:`hie_core.report.pages.prose`) and the Results page.
"""

from __future__ import annotations

import math

import pandas as pd

from hie_core.report.analysis import power
from hie_core.report.analysis.power import TARGET_DICE
from hie_core.report.analysis.results import StudyResults
from hie_core.report.viewers.display import plural

__all__ = ["design_sentence", "reach"]


def _main_split(results: StudyResults) -> str:
    return "test" if results.has("test") else results.splits[0]


def _noise(row: pd.Series) -> power.NoiseModel | None:
    """The variance components of a hypotheses row (``sd_case``, ``sd_run``, ``sd_case_run``); None without them."""
    values = [row.get(k) for k in ("sd_case", "sd_run", "sd_case_run")]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return power.NoiseModel(*(float(v) for v in values), source="this study's primary contrast")


def _smallest(fits, start: int, stop: int) -> int | None:
    """The smallest ``k`` in ``[start, stop]`` with ``fits(k)`` (``fits`` monotone); None if none."""
    if not fits(stop):
        return None
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return lo


def reach(noise: power.NoiseModel, n_cases: int, runs: int, n_tests: int, target: float = TARGET_DICE,
          folds: int = 0) -> dict:  # fmt: skip
    """What detecting ``target`` would take under ``noise``: cases at ``runs`` runs, runs at ``n_cases`` cases.

    Returns:
        ``cases`` (the fewest cases at ``runs`` runs each, None past 100,000), ``runs`` (the fewest
        runs at ``n_cases`` cases, None when the case floor is above ``target`` or past 1,000) and
        ``floor`` (:func:`hie_core.report.analysis.power.case_floor` of ``n_cases``).
    """
    floor = power.case_floor(noise, n_cases, n_tests)
    cases = _smallest(
        lambda n: power.mdd(noise, n, runs, n_tests, folds=folds) <= target, max(n_cases, 2), 100_000
    )
    more = None
    if not floor > target:
        more = _smallest(
            lambda r: power.mdd(noise, n_cases, r, n_tests, folds=folds) <= target, max(runs, 1), 1000
        )
    return {"cases": cases, "runs": more, "floor": floor}


def design_sentence(results: StudyResults, split: str | None = None) -> str:
    """What the design could detect in the primary contrasts, and what reaching the target (0.02 Dice) would take."""
    split = split or _main_split(results)
    h = results.table("hypotheses", split)
    family = h[h["family"] == "primary"]
    primary = family[family["mdd"].notna()]
    seeds = len(results.config.seeds)
    if primary.empty:
        return (f"No primary contrast could be measured on the {results.n_cases(split)} cases of this split, so what this design can detect "
                "is unknown; `python -m hie_core.study --plan` projects it before a run.")  # fmt: skip
    worst = primary.loc[primary["mdd"].astype(float).idxmax()]
    mdd = float(worst["mdd"])
    n = int(primary["n_cases"].max())  # the cases with a lesion: the primary endpoint's
    observed = float(primary["estimate"].abs().max())
    detect = (f"could detect a Dice difference of about {mdd:.3f}" if mdd < 1 else
              f"could not detect any possible Dice difference (their detectable difference, {mdd:.3f}, is above 1)")  # fmt: skip
    text = (f"With {n} cases with a lesion × {plural(seeds, 'run')} per loss, the primary contrasts {detect} "
            f"(80% power, Holm over {len(family)}); the largest observed difference was {observed:.3f}.")  # fmt: skip
    if mdd <= TARGET_DICE:
        return text + f" It could detect the analysis plan's target difference of {TARGET_DICE:g} Dice."
    if mdd < 1:
        text += (f" A difference smaller than {mdd:.3f}, such as the analysis plan's target of {TARGET_DICE:g} Dice, could "
                 "not have been detected")  # fmt: skip
    else:
        text += f" No difference, the analysis plan's target of {TARGET_DICE:g} Dice included, could have been detected"
    noise = _noise(worst)
    if noise is None:
        return text + " (`python -m hie_core.study --plan --design powered` projects what would)."
    folds = results.config.design.folds
    need = reach(noise, n, seeds, len(family), folds=folds)
    parts = []
    if need["cases"] is not None:
        parts.append(f"about {need['cases']} cases at {plural(seeds, 'run')} each")
    if need["runs"] is not None:
        parts.append(f"{need['runs']} runs per loss on these {n} cases")
    text += ": with this study's variance components it would take " + " or ".join(parts) if parts else ""
    if need["floor"] > TARGET_DICE:
        text += (f"{';' if parts else ':'} no number of runs reaches it on {n} cases, whose case-to-case spread alone "
                 f"sets a floor of {need['floor']:.3f}")  # fmt: skip
    return text + " (`python -m hie_core.study --plan --design powered`)."
