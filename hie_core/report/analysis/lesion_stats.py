"""The lesion-wise tables' computations, pure functions of the runs' score tables: per-run lesion
scores, Table 1b, detection by lesion size band (a pooled share with its resampled interval) and
claim d restated on lesions. :mod:`hie_core.report.analysis.lesion_tables` adds them to the study's
results and documents the files (every name here is importable from there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hie_core.lesions import CONNECTIVITY, LESION_COLUMNS, SIZE_BAND_EDGES_ML, SIZE_BANDS
from hie_core.report.analysis import stats

__all__ = [
    "ALL_SIZES",
    "BAND_COLUMNS",
    "CONNECTIVITY_WORDS",
    "LESION_KINDS",
    "PER_CASE_LESION_COLUMNS",
    "SMALL_LESION_ML",
    "TABLE1B_COLUMNS",
    "band_counts",
    "lesion_bands",
    "lesion_claims",
    "lesion_run_scores",
    "ratio_ci",
    "table1b",
    "with_lesion_columns",
]

#: The result files this module adds per split (``<kind>_<split>.csv``).
LESION_KINDS = ("table1b", "lesion_bands", "lesion_claims")
#: The band row of every lesion, whatever its size.
ALL_SIZES = "all sizes"
#: Lesion columns added to ``per_case_<split>.csv`` (runs averaged), with the reference volume.
PER_CASE_LESION_COLUMNS = ("ref_volume_ml", *LESION_COLUMNS)
_T1B_METRICS = ("lesion_sensitivity", "lesion_f1", "lesion_dice", "n_fp_lesions", "volume_error_ml",
                "abs_volume_error_ml")  # fmt: skip
#: Columns of ``table1b_<split>.csv``.
TABLE1B_COLUMNS = ("method", "n_cases", "n_runs", "n_ref_lesions",
                   *(f"{m}_{s}" for m in _T1B_METRICS for s in ("mean", "ci_low", "ci_high")),
                   "empty_cases", "empty_fp_lesions_mean", "empty_fp_lesion_volume_ml_mean")  # fmt: skip
#: Columns of ``lesion_bands_<split>.csv``.
BAND_COLUMNS = ("method", "size_band", "n_cases", "n_lesions", "n_runs", "detected_mean", "sensitivity", "ci_low",
                "ci_high", "fp_lesions_per_case", "note")  # fmt: skip
#: The size edge between claim d's small lesions and the others (mL): the smallest band's upper edge.
SMALL_LESION_ML = SIZE_BAND_EDGES_ML[0]
#: How a reader reads what a lesion is.
CONNECTIVITY_WORDS = f"{CONNECTIVITY}-connected components on the native grid"
_REFERENCE_SEED = -1  # as hie_core.report.analysis.tables: the seed of a reference row (one run)
_EMPTY = "empty label"


def _seeds(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["seed"], errors="coerce").fillna(_REFERENCE_SEED).astype(int)


def lesion_run_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method, split, case and seed of the lesion columns (a case scored by several folds: averaged).

    Args:
        scores: :meth:`hie_core.report.analysis.runs.StudyRuns.scores` rows (with the lesion columns).

    Returns:
        ``method``, ``split``, ``case_id``, ``seed`` (-1 for a reference), ``n_ref`` (voxels),
        ``n_models`` (the fold models that scored the case), ``pred_volume_ml``, ``ref_volume_ml``
        and :data:`hie_core.lesions.LESION_COLUMNS`.
    """
    s = scores.assign(seed=_seeds(scores))
    for col in ("pred_volume_ml", "ref_volume_ml", *LESION_COLUMNS):
        if col not in s:
            s[col] = math.nan
    means = {c: (c, "mean") for c in ("pred_volume_ml", *LESION_COLUMNS)}
    return (
        s.groupby(["method", "split", "case_id", "seed"], sort=False)
        .agg(
            n_ref=("n_ref", "first"),
            ref_volume_ml=("ref_volume_ml", "first"),
            n_models=("case_id", "size"),
            **means,
        )
        .reset_index()
    )


def with_lesion_columns(per_case: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``per_case`` (one row per method, split and case) with :data:`PER_CASE_LESION_COLUMNS`, runs averaged."""
    runs = lesion_run_scores(scores)
    averaged = runs.groupby(["method", "split", "case_id"], sort=False)[list(PER_CASE_LESION_COLUMNS)].mean()
    kept = per_case.drop(columns=[c for c in PER_CASE_LESION_COLUMNS if c in per_case.columns])
    return kept.merge(averaged.reset_index(), on=["method", "split", "case_id"], how="left")


def _matrix(runs: pd.DataFrame, method: str, split: str, column: str, cases: Sequence[str]) -> np.ndarray:
    """``(cases, runs)`` matrix of ``column`` (cases in the order given)."""
    rows = runs[(runs["method"] == method) & (runs["split"] == split)]
    return (
        rows.pivot(index="case_id", columns="seed", values=column).reindex(index=list(cases)).to_numpy(float)
    )


def _mean_ci(m: np.ndarray) -> tuple[float, float, float]:
    defined = m[~np.isnan(m)]
    if defined.size == 0:
        return math.nan, math.nan, math.nan
    return (float(defined.mean()), *stats.crossed_ci(m))


def table1b(runs: pd.DataFrame, split: str, methods: Sequence[str]) -> pd.DataFrame:
    """Table 1b of ``split``: :data:`TABLE1B_COLUMNS`, one row per method present.

    Args:
        runs: :func:`lesion_run_scores` rows.
        split: A reported split.
        methods: Methods in table order (the references too); absent ones are skipped.

    Means are over the cases with a lesion (runs averaged per case, as Table 1); an interval
    resamples cases and runs. A method without lesion columns (NaN) gets NaN.
    """
    rows = []
    for method in methods:
        mine = runs[(runs["method"] == method) & (runs["split"] == split)]
        if mine.empty:
            continue
        lesion = mine[mine["n_ref"] > 0]
        cases = list(dict.fromkeys(lesion["case_id"]))
        first = lesion.drop_duplicates("case_id")
        row = {"method": method, "n_cases": len(cases), "n_runs": int(mine["seed"].nunique()),
               "n_ref_lesions": int(first["n_ref_lesions"].sum()) if first["n_ref_lesions"].notna().all() else None}  # fmt: skip
        for metric in _T1B_METRICS:
            mean_ci = _mean_ci(_matrix(runs, method, split, metric, cases)) if cases else (math.nan,) * 3
            row.update(zip((f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"), mean_ci, strict=True))
        empty = mine[mine["n_ref"] == 0].groupby("case_id", sort=False)[
            ["n_fp_lesions", "fp_lesion_volume_ml"]
        ]
        empty = empty.mean()
        row.update(empty_cases=len(empty),
                   empty_fp_lesions_mean=float(empty["n_fp_lesions"].mean()) if len(empty) else math.nan,
                   empty_fp_lesion_volume_ml_mean=float(empty["fp_lesion_volume_ml"].mean()) if len(empty) else math.nan)  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(TABLE1B_COLUMNS))


def _band_of(volume_ml: pd.Series) -> pd.Series:
    low, high = SIZE_BAND_EDGES_ML
    index = np.where(volume_ml < low, 0, np.where(volume_ml <= high, 1, 2))
    return pd.Series(np.asarray(SIZE_BANDS, dtype=object)[index], index=volume_ml.index)


def band_counts(lesions: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per method, split, case, seed and size band: reference lesions, detected ones, false-positive lesions.

    Args:
        lesions: :meth:`hie_core.report.analysis.runs.StudyRuns.lesions` rows.
        runs: :func:`lesion_run_scores` rows (the scored cases: a case without a lesion of a band counts 0).

    Returns:
        ``method``, ``split``, ``case_id``, ``seed``, ``size_band`` (each of
        :data:`hie_core.lesions.SIZE_BANDS`), ``n_lesions``, ``n_detected``, ``n_fp`` (a case
        scored by several folds of one seed: its counts averaged over them).
    """
    keys = ["method", "split", "case_id", "seed"]
    grid = runs[[*keys, "n_models"]].merge(pd.DataFrame({"size_band": list(SIZE_BANDS)}), how="cross")
    counted = ["n_lesions", "n_detected", "n_fp"]
    if lesions.empty:
        return grid.drop(columns="n_models").assign(**dict.fromkeys(counted, 0.0))
    rows = lesions.assign(seed=_seeds(lesions), size_band=_band_of(lesions["volume_ml"].astype(float)))
    ref, pred = rows["kind"] == "reference", rows["kind"] == "predicted"
    rows = rows.assign(n_lesions=ref.astype(float), n_detected=(ref & rows["matched"]).astype(float),
                       n_fp=(pred & ~rows["matched"]).astype(float))  # fmt: skip
    sums = rows.groupby([*keys, "size_band"], sort=False)[counted].sum().reset_index()
    out = grid.merge(sums, on=[*keys, "size_band"], how="left").fillna(dict.fromkeys(counted, 0.0))
    out[counted] = out[counted].div(
        out.pop("n_models"), axis=0
    )  # summed over a seed's fold models: their mean
    return out


def ratio_ci(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% CI of ``sum(numerator) / sum(denominator)`` of two ``(cases, runs)`` matrices.

    Both are resampled with the same draws of cases and runs (:func:`hie_core.report.analysis.stats.pigeonhole_means`
    with one seed and one shape), so each resample's ratio of means is its ratio of sums.
    NaN for fewer than 2 cases.
    """
    num, den = np.asarray(numerator, float), np.asarray(denominator, float)
    if num.shape != den.shape or num.ndim != 2:
        raise ValueError(f"numerator and denominator must be (cases, runs) matrices of one shape, got "
                         f"{num.shape} and {den.shape}")  # fmt: skip
    if num.shape[0] < 2:
        return math.nan, math.nan
    top, bottom = stats.pigeonhole_means(num, seed=seed), stats.pigeonhole_means(den, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
    return stats.percentile_interval(ratios)


def _band_row(counts: pd.DataFrame, method: str, split: str, band: str) -> dict:
    rows = counts[(counts["method"] == method) & (counts["split"] == split)]
    if band != ALL_SIZES:
        rows = rows[rows["size_band"] == band]
    per_case_seed = rows.groupby(["case_id", "seed"], sort=False)[["n_lesions", "n_detected", "n_fp"]].sum()
    wide = per_case_seed.unstack("seed")
    with_lesions = wide[wide["n_lesions"].max(axis=1) > 0]
    n_cases, n_runs = len(with_lesions), int(rows["seed"].nunique())
    row = {"method": method, "size_band": band, "n_cases": n_cases, "n_runs": n_runs,
           "n_lesions": int(with_lesions["n_lesions"].iloc[:, 0].sum()) if n_cases else 0,
           "fp_lesions_per_case": float(wide["n_fp"].mean(axis=1).mean()) if len(wide) else math.nan,
           "detected_mean": math.nan, "sensitivity": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "note": ""}  # fmt: skip
    if not n_cases:
        return {**row, "note": "no reference lesion of this size"}
    detected = with_lesions["n_detected"].to_numpy(float)
    total = with_lesions["n_lesions"].to_numpy(float)
    row.update(
        detected_mean=float(detected.sum(axis=0).mean()), sensitivity=float(detected.sum() / total.sum())
    )
    row["ci_low"], row["ci_high"] = ratio_ci(detected, total)
    if n_cases < 2:
        row["note"] = "one case: no interval"
    return row


def lesion_bands(counts: pd.DataFrame, split: str, methods: Sequence[str]) -> pd.DataFrame:
    """Per method and size band (then all sizes): :data:`BAND_COLUMNS`.

    ``sensitivity`` is the share of the reference lesions of that size that the method detected,
    pooled over every case and run; ``detected_mean`` the detected count per run.
    """
    present = [m for m in methods if ((counts["method"] == m) & (counts["split"] == split)).any()]
    rows = [_band_row(counts, m, split, band) for m in present for band in (*SIZE_BANDS, ALL_SIZES)]
    return pd.DataFrame(rows).reindex(columns=list(BAND_COLUMNS))


def _claim_row(counts: pd.DataFrame, loss: str, split: str) -> dict:
    """Claim d on lesions for one loss: detected share under 0.1 mL minus at least 0.1 mL, paired by case and run."""
    from hie_core.report.analysis.variance import paired_contrast, untestable_reason

    rows = counts[(counts["method"] == loss) & (counts["split"] == split)]
    small = rows[rows["size_band"] == SIZE_BANDS[0]].groupby(["case_id", "seed"], sort=False)
    large = rows[rows["size_band"] != SIZE_BANDS[0]].groupby(["case_id", "seed"], sort=False)
    s, g = small[["n_lesions", "n_detected"]].sum().unstack("seed"), large[["n_lesions", "n_detected"]].sum()
    g = g.unstack("seed").reindex(index=s.index)
    both = s.index[(s["n_lesions"].min(axis=1) > 0) & (g["n_lesions"].min(axis=1) > 0)]
    a = (s.loc[both, "n_detected"] / s.loc[both, "n_lesions"]).to_numpy(float)
    b = (g.loc[both, "n_detected"] / g.loc[both, "n_lesions"]).to_numpy(float)
    if not len(both):
        a = b = np.zeros((0, max(int(rows["seed"].nunique()), 1)))
    res = paired_contrast(a, b)
    why = untestable_reason(res)
    n_small, n_large = (
        int(s.loc[both, "n_lesions"].iloc[:, 0].sum()),
        int(g.loc[both, "n_lesions"].iloc[:, 0].sum()),
    )
    detail = (f"<{SMALL_LESION_ML:g} mL {np.mean(a):.3f} of {n_small} lesions, >={SMALL_LESION_ML:g} mL "
              f"{np.mean(b):.3f} of {n_large}" if len(both) else "no case with both small and larger lesions")  # fmt: skip
    return {"hypothesis": "d", "family": "lesion-wise", "method": loss, "reference": loss,
            "contrast": f"{loss}: lesions <{SMALL_LESION_ML:g} mL - >={SMALL_LESION_ML:g} mL",
            "metric": "lesion_sensitivity", "direction": -1, "margin": math.nan, "seed_estimate": math.nan,
            **{k: res[k] for k in ("n_cases", "n_seeds", "estimate", "ci_low", "ci_high", "p", "p_equivalence",
                                   "p_wilcoxon", "se", "df", "sd_case", "sd_run", "sd_case_run")},
            "detail": detail, "reason": why, "_testable": not why}  # fmt: skip


def lesion_claims(counts: pd.DataFrame, split: str, losses: Sequence[str]) -> pd.DataFrame:
    """Claim d (small lesions are the hardest) restated on lesions: one row per loss that ran.

    Per loss, over the cases with reference lesions both under 0.1 mL and of at least 0.1 mL:
    the detected share of the small ones minus that of the larger ones, per case and run, tested
    with the study's crossed t test (:func:`hie_core.report.analysis.variance.paired_contrast`), Holm over
    these rows (their own family, ``lesion-wise``), the detectable difference at the family's
    first Holm step and the verdict of :func:`hie_core.report.analysis.hypotheses.verdict` (direction -1:
    the claim expects the small lesions' share to be lower).

    Returns:
        The columns of ``hypotheses_<split>.csv`` (:data:`hie_core.report.analysis.hypotheses.HYPOTHESIS_COLUMNS`).
    """
    from hie_core.report.analysis.hypotheses import HYPOTHESIS_COLUMNS, verdict
    from hie_core.report.analysis.power import ALPHA
    from hie_core.report.analysis.variance import detectable

    present = set(counts.loc[counts["split"] == split, "method"])
    rows = [_claim_row(counts, loss, split) for loss in losses if loss in present]
    if not rows:
        return pd.DataFrame(columns=list(HYPOTHESIS_COLUMNS))
    table = pd.DataFrame(rows)
    testable = table.pop("_testable").astype(bool)
    table["p_holm"], table["p_equivalence_holm"], table["mdd"] = math.nan, math.nan, math.nan
    if testable.any():
        table.loc[testable, "p_holm"] = stats.holm(table.loc[testable, "p"].to_numpy(float))
        n_tests = int(table.loc[testable, "p"].notna().sum())
        table.loc[testable, "mdd"] = [detectable(se, df, n_tests, ALPHA)
                                      for se, df in zip(table.loc[testable, "se"], table.loc[testable, "df"], strict=True)]  # fmt: skip
    table["verdict"] = [verdict(p, q, e, d, t) for p, q, e, d, t in
                        zip(table["p_holm"], table["p_equivalence_holm"], table["estimate"], table["direction"],
                            testable, strict=True)]  # fmt: skip
    return table.reindex(columns=list(HYPOTHESIS_COLUMNS))
