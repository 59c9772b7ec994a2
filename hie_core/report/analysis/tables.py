"""The study's tables, computed from per-run per-case scores: Table 1, comparisons, strata, per case.

Pure functions of data frames (no files): :mod:`hie_core.report.analysis.results` feeds them the run
folders and writes what they return. Two frames carry the scores:

- :func:`run_scores`: one row per method, split, case and seed (a test case scored by every
  fold model of a cross-validated seed is averaged over its folds first);
- :func:`seed_average`: one row per method, split and case, the seeds averaged.

The endpoints (the book's Analysis plan page states them):

- the primary endpoint is Dice on cases **with a lesion**; cases whose reference label is empty
  are their own stratum (:data:`EMPTY_STRATUM`) and their own endpoint, the false-positive
  volume in mL, and stay out of every metric mean;
- MASD follows the challenge's evaluation (each method's mean over the cases where **its** MASD
  is defined, NaN skipped): a case's MASD is undefined for a method when it is undefined in any
  of that method's runs (one mask empty); Table 1 gives each method's own count of defined cases
  (``masd_cases``), so no method's failures change another's numbers, and its ranks
  (``rank_masd``, ``rank_mean``) use these means. A worst-case imputation (each undefined
  case-run given the split's largest MASD) is a sensitivity column (``masd_mm_worst_*``,
  ``rank_masd_worst``, ``rank_mean_worst``). A paired MASD comparison of two methods uses the cases
  defined in every run of both;
- intervals come from the pigeonhole bootstrap of :mod:`hie_core.report.analysis.stats` (cases and runs
  resampled independently: runs are crossed with cases); paired comparisons are tested with the
  crossed t test of :mod:`hie_core.report.analysis.variance`; strata get an interval only with at least
  :data:`MIN_STRATUM_CI` values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hie_core.metrics import BURDEN_STRATA
from hie_core.report.analysis import power
from hie_core.report.analysis.stats import challenge_ranks, crossed_ci, holm, p_rank_first
from hie_core.report.analysis.variance import NOT_TESTABLE, detectable, paired_contrast, untestable_reason

__all__ = [
    "COMPARISON_COLUMNS",
    "EMPTY_STRATUM",
    "HIGHER_IS_BETTER",
    "MARGINS",
    "METRICS",
    "MIN_STRATUM_CI",
    "PER_CASE_COLUMNS",
    "STRATA",
    "STRATA_COLUMNS",
    "TABLE1_COLUMNS",
    "UNRANKED",
    "comparisons",
    "contrast_cases",
    "equivalence_verdict",
    "lesion_cases",
    "masd_common_cases",
    "matrix",
    "per_case_wide",
    "run_scores",
    "seed_average",
    "seed_sd",
    "strata",
    "table1",
]

METRICS = ("dice", "masd_mm", "nsd")
HIGHER_IS_BETTER = {"dice": True, "masd_mm": False, "nsd": True}
_RANK_NAME = {"dice": "dice", "masd_mm": "masd", "nsd": "nsd"}
#: Methods shown in Table 1 but not ranked (the ceiling is a property of the grid, not a method).
UNRANKED = ("ceiling",)
#: The stratum of cases whose reference label is empty (no lesion), kept out of the metric means.
EMPTY_STRATUM = "empty label"
#: Every stratum of the strata table, the challenge's three lesion-burden strata and the empty labels.
STRATA = (*BURDEN_STRATA, EMPTY_STRATUM)
#: Strata with fewer defined values get no interval.
MIN_STRATUM_CI = 5
#: Default equivalence margins of the two one-sided tests, +-0.02 Dice and NSD, +-0.5 mm MASD.
MARGINS: dict[str, float] = {"dice": 0.02, "masd_mm": 0.5, "nsd": 0.02}
#: Family-wise error rate of every Holm family.
ALPHA = power.ALPHA
_REFERENCE_SEED = -1  # the seed column of a reference row (baseline, ceiling: one run, no seed)

_CI_COLUMNS = tuple(f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high"))
#: Columns of ``table1_<split>.csv``.
TABLE1_COLUMNS = ("method", "n_cases", "n_runs", *_CI_COLUMNS[:6], "masd_cases", "masd_undefined",
                  "masd_undefined_runs", *_CI_COLUMNS[6:], "masd_mm_worst_mean", "masd_mm_worst_ci_low",
                  "masd_mm_worst_ci_high", "rank_dice", "rank_masd", "rank_nsd", "rank_mean", "rank_masd_worst",
                  "rank_mean_worst", "p_rank1_dice",
                  "dice_seed_sd", "masd_mm_seed_sd", "nsd_seed_sd", "empty_cases", "fp_cases",
                  "fp_volume_ml_mean")  # fmt: skip
#: Columns of ``comparisons_<split>.csv``.
COMPARISON_COLUMNS = ("method", "reference", "metric", "n_pairs", "mean_difference", "ci_low", "ci_high",
                      "p_wilcoxon", "p_holm", "n_seeds", "margin", "p_equivalence", "p_equivalence_holm", "mdd", "verdict",
                      "favours", "reason", "p", "se", "df", "sd_case", "sd_run", "sd_case_run")  # fmt: skip

#: Columns of ``strata_<split>.csv``.
STRATA_COLUMNS = ("method", "stratum", "n_cases", *_CI_COLUMNS[:6], "masd_undefined", *_CI_COLUMNS[6:],
                  "fp_cases", "fp_volume_ml_mean", "note")  # fmt: skip
#: Columns of ``per_case_<split>.csv`` (one row per case and method, seeds averaged).
PER_CASE_COLUMNS = ("method", "case_id", "split", "stratum", "burden_percent", "n_runs", "dice", "masd_mm", "nsd",
                    "masd_undefined_runs", "n_pred", "n_ref", "pred_volume_ml")  # fmt: skip


def run_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method, split, case and seed; a case scored by several fold models is averaged.

    Args:
        scores: Per-run per-case rows (``hie_core.report.analysis.runs.StudyRuns.scores``): ``method``,
            ``seed`` (None for a reference), optionally ``fold``, ``case_id``, ``split``,
            ``stratum``, ``burden_percent``, the metrics, ``n_pred``, ``n_ref`` and optionally
            ``pred_volume_ml``.

    Returns:
        The same columns without ``fold``; ``seed`` is -1 for a reference; ``stratum`` is
        :data:`EMPTY_STRATUM` where the reference label is empty; ``masd_mm`` is NaN where any
        of the folds left it undefined.
    """
    s = scores.copy()
    s["seed"] = pd.to_numeric(s["seed"], errors="coerce").fillna(_REFERENCE_SEED).astype(int)
    if "pred_volume_ml" not in s:
        s["pred_volume_ml"] = math.nan
    s["_masd_nan"] = s["masd_mm"].isna()
    out = s.groupby(["method", "split", "case_id", "seed"], sort=False).agg(
        stratum=("stratum", "first"), burden_percent=("burden_percent", "first"), dice=("dice", "mean"),
        masd_mm=("masd_mm", "mean"), nsd=("nsd", "mean"), n_pred=("n_pred", "mean"), n_ref=("n_ref", "first"),
        pred_volume_ml=("pred_volume_ml", "mean"), _masd_nan=("_masd_nan", "any"),
    ).reset_index()  # fmt: skip
    out.loc[out.pop("_masd_nan"), "masd_mm"] = math.nan
    out.loc[out["n_ref"] == 0, "stratum"] = EMPTY_STRATUM
    return out


def seed_average(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per method, split and case: the :func:`run_scores` rows averaged over the seeds.

    Returns:
        :data:`PER_CASE_COLUMNS`. MASD is NaN when it is undefined in any seed (a case is
        MASD-undefined if any seed's is); ``masd_undefined_runs`` counts the seeds where it is;
        ``n_pred`` and ``pred_volume_ml`` are seed means. Methods keep their order of first appearance.
    """
    r = runs.assign(_masd_nan=runs["masd_mm"].isna())
    out = r.groupby(["method", "split", "case_id"], sort=False).agg(
        stratum=("stratum", "first"), burden_percent=("burden_percent", "first"), n_runs=("dice", "size"),
        dice=("dice", "mean"), masd_mm=("masd_mm", "mean"), nsd=("nsd", "mean"),
        masd_undefined_runs=("_masd_nan", "sum"), n_pred=("n_pred", "mean"), n_ref=("n_ref", "first"),
        pred_volume_ml=("pred_volume_ml", "mean"),
    ).reset_index()  # fmt: skip
    out.loc[out["masd_undefined_runs"] > 0, "masd_mm"] = math.nan
    out["masd_undefined_runs"] = out["masd_undefined_runs"].astype(int)
    return out[list(PER_CASE_COLUMNS)]


def lesion_cases(per_case: pd.DataFrame, split: str, methods: Sequence[str]) -> list[str]:
    """Cases of ``split`` with a lesion that every one of ``methods`` scored, in file order."""
    rows = per_case[(per_case["split"] == split) & (per_case["stratum"] != EMPTY_STRATUM)]
    rows = rows[rows["method"].isin(methods)]
    counts = rows.groupby("case_id", sort=False)["method"].nunique()
    return [c for c, n in counts.items() if n == len(set(methods))]


def masd_common_cases(per_case: pd.DataFrame, split: str, methods: Sequence[str]) -> list[str]:
    """Cases with a lesion whose MASD is defined in every run of every one of ``methods``."""
    cases = lesion_cases(per_case, split, methods)
    rows = per_case[
        (per_case["split"] == split) & per_case["method"].isin(methods) & per_case["case_id"].isin(cases)
    ]
    undefined = set(rows.loc[rows["masd_mm"].isna(), "case_id"])
    return [c for c in cases if c not in undefined]


def contrast_cases(per_case: pd.DataFrame, split: str, metric: str, methods: Sequence[str]) -> list[str]:
    """The case set a comparison of ``methods`` on ``metric`` is paired over (MASD: defined for all)."""
    if metric == "masd_mm":
        return masd_common_cases(per_case, split, methods)
    return lesion_cases(per_case, split, methods)


def matrix(runs: pd.DataFrame, method: str, split: str, metric: str, cases: Sequence[str]) -> np.ndarray:
    """``(cases, seeds)`` matrix of ``metric`` for ``method`` (:func:`run_scores` rows), cases in the order given."""
    rows = runs[(runs["method"] == method) & (runs["split"] == split)]
    wide = rows.pivot(index="case_id", columns="seed", values=metric)
    return wide.reindex(index=list(cases)).to_numpy(float)


def _mean_ci(m: np.ndarray, min_cases: int = 2) -> tuple[float, float, float]:
    """Mean of the defined cells of a ``(cases, runs)`` matrix and its pigeonhole 95% CI."""
    if m.size == 0 or np.isnan(m).all():
        return math.nan, math.nan, math.nan
    if m.shape[0] < min_cases:
        return float(np.nanmean(m)), math.nan, math.nan
    return (float(np.nanmean(m)), *crossed_ci(m))


def seed_sd(runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """Between-seed SD of each method's split mean over its cases with a lesion (ddof 1; NaN with one seed).

    Returns:
        Indexed by method, columns ``<metric>_seed_sd``.
    """
    rows = runs[(runs["split"] == split) & (runs["stratum"] != EMPTY_STRATUM)]
    per_seed = rows.groupby(["method", "seed"], sort=False)[list(METRICS)].mean()
    return per_seed.groupby(level="method", sort=False).std(ddof=1).add_suffix("_seed_sd")


def _empty_endpoint(rows: pd.DataFrame) -> dict:
    """False positives on the cases with an empty reference label (seed-averaged volume in mL)."""
    empty = rows[rows["stratum"] == EMPTY_STRATUM]
    volume = empty["pred_volume_ml"].astype(float)
    return {"empty_cases": len(empty), "fp_cases": int((empty["n_pred"] > 0).sum()),
            "fp_volume_ml_mean": float(volume.mean()) if len(empty) and volume.notna().all() else math.nan}  # fmt: skip


def _method_row(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, method: str, worst: float) -> dict:
    rows = per_case[(per_case["method"] == method) & (per_case["split"] == split)]
    lesion = rows[rows["stratum"] != EMPTY_STRATUM]
    cases = lesion["case_id"].tolist()
    row = {"method": method, "n_cases": len(lesion), "n_runs": int(rows["n_runs"].max())}
    for metric in ("dice", "nsd"):
        row.update(zip((f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"),
                       _mean_ci(matrix(runs, method, split, metric, cases)), strict=True))  # fmt: skip
    own = lesion.loc[lesion["masd_mm"].notna(), "case_id"].tolist()  # defined in every run of this method
    row.update(zip(("masd_mm_mean", "masd_mm_ci_low", "masd_mm_ci_high"),
                   _mean_ci(matrix(runs, method, split, "masd_mm", own)), strict=True))  # fmt: skip
    all_masd = matrix(runs, method, split, "masd_mm", cases)
    imputed = np.where(np.isnan(all_masd), worst, all_masd) if math.isfinite(worst) else all_masd
    row.update(zip(("masd_mm_worst_mean", "masd_mm_worst_ci_low", "masd_mm_worst_ci_high"), _mean_ci(imputed),
                   strict=True))  # fmt: skip
    row.update({"masd_cases": len(own), "masd_undefined": int(lesion["masd_mm"].isna().sum()),
                "masd_undefined_runs": int(lesion["masd_undefined_runs"].sum()), **_empty_endpoint(rows)})  # fmt: skip
    return row


def _rank(table: pd.DataFrame, ranked: pd.Series, masd_column: str) -> pd.DataFrame:
    means = table.loc[ranked, ["dice_mean", masd_column, "nsd_mean"]]
    means.columns = list(METRICS)
    ranks = challenge_ranks(means, HIGHER_IS_BETTER)
    ranks.columns = [
        f"rank_{_RANK_NAME[c.removeprefix('rank_')]}" if c != "rank_mean" else c for c in ranks.columns
    ]
    return ranks


def table1(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, methods: Sequence[str],
           losses: Sequence[str] = ()) -> pd.DataFrame:  # fmt: skip
    """Table 1 of ``split``: per method n, mean and 95% CI of each metric, ranks, P(rank 1), seed SD, false positives.

    Args:
        per_case: :func:`seed_average` rows.
        runs: :func:`run_scores` rows (intervals and the between-seed SD).
        split: A reported split (``"test"``, ``"val"`` or ``"cv"``).
        methods: Methods in table order; absent ones are skipped. :data:`UNRANKED` ones get no rank.
        losses: The methods whose chance of the best mean Dice (``p_rank1_dice``) is estimated.

    Returns:
        :data:`TABLE1_COLUMNS`, one row per method present. Dice and NSD over the cases with a
        lesion; MASD over ``masd_cases``, the method's own cases with a lesion whose MASD is
        defined in every one of its runs (the challenge's rule); ``masd_mm_worst_*``,
        ``rank_masd_worst`` and ``rank_mean_worst``: every undefined case-run given the split's
        largest MASD (a sensitivity analysis).
    """
    present = [m for m in methods if ((per_case["method"] == m) & (per_case["split"] == split)).any()]
    split_runs = runs[(runs["split"] == split) & (runs["stratum"] != EMPTY_STRATUM)]
    worst = float(split_runs["masd_mm"].max()) if split_runs["masd_mm"].notna().any() else math.nan
    sd = seed_sd(runs, split)
    rows = []
    for method in present:
        row = _method_row(per_case, runs, split, method, worst)
        row.update(sd.loc[method].to_dict() if method in sd.index else {})
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(TABLE1_COLUMNS))
    if table.empty:
        return table
    ranked = ~table["method"].isin(UNRANKED)
    table.loc[ranked, ["rank_dice", "rank_masd", "rank_nsd", "rank_mean"]] = _rank(
        table, ranked, "masd_mm_mean"
    )
    worst_ranks = _rank(table, ranked, "masd_mm_worst_mean")
    table.loc[ranked, "rank_masd_worst"] = worst_ranks["rank_masd"]
    table.loc[ranked, "rank_mean_worst"] = worst_ranks["rank_mean"]
    ranked_losses = [m for m in losses if m in present]
    cases = lesion_cases(per_case, split, ranked_losses)
    if len(ranked_losses) > 1 and len(cases) > 1:
        shares = p_rank_first({m: matrix(runs, m, split, "dice", cases) for m in ranked_losses})
        table["p_rank1_dice"] = table["method"].map(shares)
    return table


def _favours(method: str, reference: str, metric: str, difference: float) -> str:
    if not np.isfinite(difference) or difference == 0:
        return ""
    return method if (difference > 0) == HIGHER_IS_BETTER[metric] else reference


def equivalence_verdict(p_holm: float, p_equivalence_holm: float, testable: bool = True) -> str:
    """``"different"`` (Holm p < alpha), ``"equivalent"`` (Holm TOST p < alpha), ``"inconclusive"``, or
    ``NOT_TESTABLE`` when the design cannot reach a verdict."""
    if not testable:
        return NOT_TESTABLE
    if p_holm < ALPHA:
        return "different"
    if p_equivalence_holm < ALPHA:
        return "equivalent"
    return "inconclusive"


def comparisons(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, methods: Sequence[str],
                references: Sequence[str], margins: Mapping[str, float] = MARGINS) -> pd.DataFrame:  # fmt: skip
    """Each method against each reference on each metric, paired over the cases both have (one Holm family).

    Dice and NSD are paired over the cases with a lesion both scored; MASD over the cases
    defined in every run of both. Superiority (the crossed t test, ``p``) and equivalence (its
    TOST with ``margins``) are each Holm-adjusted over the table's testable rows; ``p_wilcoxon``
    is a sensitivity column; ``verdict`` is :func:`equivalence_verdict` (``NOT_TESTABLE`` under
    :func:`hie_core.report.analysis.variance.untestable_reason`); ``mdd`` the
    minimum detectable difference at the first Holm step (80% power) from the row's SE and df.

    Returns:
        :data:`COMPARISON_COLUMNS`; ``mean_difference`` is method minus reference, ``favours``
        names the side with the better mean (direction per metric), ``reason`` why a test did not run.
    """
    present = set(per_case.loc[per_case["split"] == split, "method"])
    out = []
    for method in [m for m in methods if m in present]:
        for reference in [r for r in references if r in present and r != method]:
            for metric in METRICS:
                cases = contrast_cases(per_case, split, metric, [method, reference])
                res = paired_contrast(matrix(runs, method, split, metric, cases),
                                      matrix(runs, reference, split, metric, cases), margins[metric])  # fmt: skip
                why = untestable_reason(res)
                out.append({"method": method, "reference": reference, "metric": metric, "n_pairs": res["n_cases"],
                            "mean_difference": res["estimate"], "margin": margins[metric], "reason": why,
                            "_testable": not why, "favours": _favours(method, reference, metric, res["estimate"]),
                            **{k: res[k] for k in ("n_seeds", "ci_low", "ci_high", "p", "p_wilcoxon", "p_equivalence",
                                                   "se", "df", "sd_case", "sd_run", "sd_case_run")}})  # fmt: skip
    table = pd.DataFrame(out)
    if table.empty:
        return table.reindex(columns=list(COMPARISON_COLUMNS))
    testable = table["_testable"].astype(bool)
    table["p_holm"], table["p_equivalence_holm"] = math.nan, math.nan
    table.loc[testable, "p_holm"] = holm(table.loc[testable, "p"].to_numpy(float))
    table.loc[testable, "p_equivalence_holm"] = holm(table.loc[testable, "p_equivalence"].to_numpy(float))
    n_tests = int(table.loc[testable, "p"].notna().sum())
    table["mdd"] = [detectable(se, df, n_tests, ALPHA) if t else math.nan
                    for se, df, t in zip(table["se"], table["df"], testable, strict=True)]  # fmt: skip
    table["verdict"] = [equivalence_verdict(p, q, t) for p, q, t in
                        zip(table["p_holm"], table["p_equivalence_holm"], testable, strict=True)]  # fmt: skip
    return table.reindex(columns=list(COMPARISON_COLUMNS))


def _stratum_row(runs: pd.DataFrame, rows: pd.DataFrame, method: str, split: str, stratum: str) -> dict:
    row = {"method": method, "stratum": stratum, "n_cases": len(rows), "note": ""}
    if stratum == EMPTY_STRATUM:
        endpoint = _empty_endpoint(rows)
        row.update(fp_cases=endpoint["fp_cases"], fp_volume_ml_mean=endpoint["fp_volume_ml_mean"])
        row["note"] = (
            "no case in this stratum" if rows.empty else "no lesion: false positives are the endpoint"
        )
        return row
    for metric in METRICS:
        cases = rows.loc[rows[metric].notna(), "case_id"].tolist()
        row.update(zip((f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"),
                       _mean_ci(matrix(runs, method, split, metric, cases), MIN_STRATUM_CI), strict=True))  # fmt: skip
    row["masd_undefined"] = int(rows["masd_mm"].isna().sum())
    if rows.empty:
        row["note"] = "no case in this stratum"
    elif len(rows) < MIN_STRATUM_CI:
        row["note"] = f"n < {MIN_STRATUM_CI}: no interval"
    return row


def strata(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, methods: Sequence[str]) -> pd.DataFrame:
    """Per method and stratum (lesion burden, then the empty-label cases): n, metrics, intervals where n >= 5.

    Returns:
        :data:`STRATA_COLUMNS`; every stratum of :data:`STRATA` for every method, with ``note``
        saying why a row has no interval (or no case); the empty-label row carries the
        false-positive endpoint instead of the metrics.
    """
    rows = per_case[per_case["split"] == split]
    out = []
    for method in [m for m in methods if (rows["method"] == m).any()]:
        for stratum in STRATA:
            cases = rows[(rows["method"] == method) & (rows["stratum"] == stratum)]
            out.append(_stratum_row(runs, cases, method, split, stratum))
    return pd.DataFrame(out).reindex(columns=list(STRATA_COLUMNS))


def per_case_wide(per_case: pd.DataFrame, split: str, metric: str, methods: Sequence[str]) -> pd.DataFrame:
    """One row per case of ``split``: its stratum and burden, then ``metric`` of each method."""
    rows = per_case[per_case["split"] == split]
    cases = rows.drop_duplicates("case_id")[["case_id", "stratum", "burden_percent"]]
    wide = rows.pivot(index="case_id", columns="method", values=metric)
    wide = wide[[m for m in methods if m in wide.columns]]
    return cases.merge(wide, left_on="case_id", right_index=True, how="left").reset_index(drop=True)
