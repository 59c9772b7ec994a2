"""The study's tables, computed from per-case scores: Table 1, comparisons, strata, per case.

Pure functions of data frames (no files): :mod:`hie_core.report.results` feeds them the run
folders and writes what they return. The input of each is the seed-averaged per-case table of
:func:`seed_average`, one row per method, split and case, so that every statistic is over
cases, and the spread over seeds is reported beside it (:func:`seed_sd`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hie_core.metrics import BURDEN_STRATA
from hie_core.report.stats import challenge_ranks, holm, mean_ci, paired_difference

__all__ = [
    "COMPARISON_COLUMNS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "PER_CASE_COLUMNS",
    "STRATA_COLUMNS",
    "TABLE1_COLUMNS",
    "UNRANKED",
    "comparisons",
    "per_case_wide",
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
#: Strata with fewer cases get no interval.
MIN_STRATUM_CI = 3

_CI_COLUMNS = tuple(f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high"))
#: Columns of ``table1_<split>.csv`` (issue 10 item 9, then the between-seed SDs).
TABLE1_COLUMNS = ("method", "n_cases", "n_runs", *_CI_COLUMNS[:6], "masd_undefined", *_CI_COLUMNS[6:],
                  "rank_dice", "rank_masd", "rank_nsd", "rank_mean",
                  "dice_seed_sd", "masd_mm_seed_sd", "nsd_seed_sd")  # fmt: skip
#: Columns of ``comparisons_<split>.csv`` (issue 10 item 9, then ``favours`` and ``reason``).
COMPARISON_COLUMNS = ("method", "reference", "metric", "n_pairs", "mean_difference", "ci_low", "ci_high",
                      "p_wilcoxon", "p_holm", "favours", "reason")  # fmt: skip
#: Columns of ``strata_<split>.csv``.
STRATA_COLUMNS = (
    "method",
    "stratum",
    "n_cases",
    *_CI_COLUMNS[:6],
    "masd_undefined",
    *_CI_COLUMNS[6:],
    "note",
)
#: Columns of ``per_case_<split>.csv`` (one row per case and method, seeds averaged).
PER_CASE_COLUMNS = ("method", "case_id", "split", "stratum", "burden_percent", "n_runs", "dice", "masd_mm", "nsd",
                    "masd_undefined_runs", "n_pred", "n_ref")  # fmt: skip


def seed_average(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method, split and case: the scores averaged over the method's seeds.

    Args:
        scores: Per-run per-case rows with ``method``, ``case_id``, ``split``, ``stratum``,
            ``burden_percent``, the three metrics, ``n_pred`` and ``n_ref``.

    Returns:
        :data:`PER_CASE_COLUMNS`. MASD is the mean over the seeds where it is defined (NaN only
        when undefined in every seed); ``masd_undefined_runs`` counts the others; ``n_pred`` is
        the mean predicted voxel count. Methods keep their order of first appearance.
    """
    grouped = scores.groupby(["method", "split", "case_id"], sort=False)
    out = grouped.agg(
        stratum=("stratum", "first"), burden_percent=("burden_percent", "first"), n_runs=("dice", "size"),
        dice=("dice", "mean"), masd_mm=("masd_mm", "mean"), nsd=("nsd", "mean"),
        masd_undefined_runs=("masd_mm", lambda s: int(s.isna().sum())), n_pred=("n_pred", "mean"),
        n_ref=("n_ref", "first"),
    ).reset_index()  # fmt: skip
    return out[list(PER_CASE_COLUMNS)]


def seed_sd(scores: pd.DataFrame, split: str) -> pd.DataFrame:
    """Between-seed SD of each method's split mean (ddof 1; NaN with fewer than 2 seeds).

    Returns:
        Indexed by method, columns ``<metric>_seed_sd``.
    """
    rows = scores[scores["split"] == split]
    per_seed = rows.groupby(["method", "seed"], sort=False, dropna=False)[list(METRICS)].mean()
    sd = per_seed.groupby(level="method", sort=False).std(ddof=1)
    return sd.add_suffix("_seed_sd")


def _metric_stats(rows: pd.DataFrame, prefix: str = "") -> dict:
    out = {}
    for metric in METRICS:
        s = mean_ci(rows[metric].to_numpy(float))
        out.update(
            {f"{metric}_mean": s["mean"], f"{metric}_ci_low": s["ci_low"], f"{metric}_ci_high": s["ci_high"]}
        )
    out["masd_undefined"] = int(rows["masd_mm"].isna().sum())
    return out


def table1(per_case: pd.DataFrame, scores: pd.DataFrame, split: str, methods: Sequence[str]) -> pd.DataFrame:
    """Table 1 of ``split``: per method n, mean and 95% CI of each metric, challenge ranks, seed SD.

    Args:
        per_case: :func:`seed_average` rows.
        scores: The per-run rows (for the between-seed SD).
        split: ``"test"`` or ``"val"``.
        methods: Methods in table order; absent ones are skipped. :data:`UNRANKED` ones get
            no rank.

    Returns:
        :data:`TABLE1_COLUMNS`, one row per method present.
    """
    rows, sd = [], seed_sd(scores, split)
    for method in methods:
        cases = per_case[(per_case["method"] == method) & (per_case["split"] == split)]
        if cases.empty:
            continue
        row = {"method": method, "n_cases": len(cases), "n_runs": int(cases["n_runs"].max())}
        row.update(_metric_stats(cases))
        row.update(sd.loc[method].to_dict() if method in sd.index else {})
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(TABLE1_COLUMNS))
    ranked = ~table["method"].isin(UNRANKED)
    means = table.loc[ranked, [f"{m}_mean" for m in METRICS]]
    means.columns = list(METRICS)
    ranks = challenge_ranks(means, HIGHER_IS_BETTER)
    ranks.columns = [
        f"rank_{_RANK_NAME[c.removeprefix('rank_')]}" if c != "rank_mean" else c for c in ranks.columns
    ]
    table.loc[ranked, ranks.columns] = ranks
    return table


def _favours(method: str, reference: str, metric: str, difference: float) -> str:
    if not np.isfinite(difference) or difference == 0:
        return ""
    return method if (difference > 0) == HIGHER_IS_BETTER[metric] else reference


def comparisons(
    per_case: pd.DataFrame, split: str, methods: Sequence[str], references: Sequence[str]
) -> pd.DataFrame:
    """Each method against each reference on each metric, paired over the cases both have.

    ``p_holm`` adjusts over every test in the returned table (one family per split).

    Args:
        per_case: :func:`seed_average` rows.
        split: The split.
        methods: Methods compared (a method is not compared with itself).
        references: E.g. ``("dice", "baseline")``; absent ones are skipped.

    Returns:
        :data:`COMPARISON_COLUMNS`; ``mean_difference`` is method minus reference, ``favours``
        names the side with the better mean (direction per metric), ``reason`` why a test
        did not run.
    """
    rows = per_case[per_case["split"] == split]
    present = set(rows["method"])
    out = []
    for method in [m for m in methods if m in present]:
        a = rows[rows["method"] == method].set_index("case_id")
        for reference in [r for r in references if r in present and r != method]:
            b = rows[rows["method"] == reference].set_index("case_id")
            common = a.index.intersection(b.index)
            for metric in METRICS:
                res = paired_difference(
                    a.loc[common, metric].to_numpy(float), b.loc[common, metric].to_numpy(float)
                )
                favours = _favours(method, reference, metric, res["mean_difference"])
                out.append(
                    {"method": method, "reference": reference, "metric": metric, **res, "favours": favours}
                )
    table = pd.DataFrame(out).reindex(columns=list(COMPARISON_COLUMNS))
    table["p_holm"] = holm(table["p_wilcoxon"].to_numpy(float)) if len(table) else []
    return table


def strata(per_case: pd.DataFrame, split: str, methods: Sequence[str]) -> pd.DataFrame:
    """Per method and lesion-burden stratum: n, the three metrics, a CI where n >= 3.

    Returns:
        :data:`STRATA_COLUMNS`; every stratum of ``hie_core.metrics.BURDEN_STRATA`` for every method, with
        ``note`` saying why a row has no interval (or no case).
    """
    rows = per_case[per_case["split"] == split]
    out = []
    for method in [m for m in methods if (rows["method"] == m).any()]:
        for stratum in BURDEN_STRATA:
            cases = rows[(rows["method"] == method) & (rows["stratum"] == stratum)]
            row = {"method": method, "stratum": stratum, "n_cases": len(cases), **_metric_stats(cases)}
            note = ""
            if len(cases) == 0:
                note = "no case in this stratum"
            elif len(cases) < MIN_STRATUM_CI:
                note = f"n < {MIN_STRATUM_CI}: no interval"
                row.update({k: np.nan for k in row if k.endswith(("_ci_low", "_ci_high"))})
            out.append({**row, "note": note})
    return pd.DataFrame(out).reindex(columns=list(STRATA_COLUMNS))


def per_case_wide(per_case: pd.DataFrame, split: str, metric: str, methods: Sequence[str]) -> pd.DataFrame:
    """One row per case of ``split``: its stratum and burden, then ``metric`` of each method."""
    rows = per_case[per_case["split"] == split]
    cases = rows.drop_duplicates("case_id")[["case_id", "stratum", "burden_percent"]]
    wide = rows.pivot(index="case_id", columns="method", values=metric)
    wide = wide[[m for m in methods if m in wide.columns]]
    return cases.merge(wide, left_on="case_id", right_index=True, how="left").reset_index(drop=True)
