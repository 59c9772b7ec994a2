"""The seed's claims tested: one row per claim, contrast and metric, each with a verdict.

The claims are :data:`hie_core.report.analysis.seed_study.CLAIMS`:

- **a** (primary): each hybrid beats its standalone base on Dice with a lesion
  (DiceFocal+HDT vs DiceFocal, Tversky+HDT vs Tversky), Holm over these two tests; the same
  contrasts on MASD and NSD are secondary;
- **b**: Tversky+HDT has the best Dice and NSD: Tversky+HDT against each other loss;
- **c**: the hybrids take longer to converge: the epoch of the best checkpoint, hybrid minus
  base, paired by run (seed, fold); testable only where early stopping can act (patience below
  the epoch cap) and no run's best epoch sits at the cap (a capped endpoint is censored);
- **d**: lesions under 1% of the brain are the hardest: per loss, the trend of Dice over the
  challenge's burden strata (<1%, 1-5%, >5%; ``hie_core.metrics.BURDEN_STRATA``), the slope
  per stratum step (:func:`hie_core.report.analysis.variance.stratum_trend`), claimed positive.

Case contrasts use the crossed noise model of :mod:`hie_core.report.analysis.variance`: the estimate is
the mean paired difference, its 95% interval the pigeonhole bootstrap's (cases and runs
resampled independently), ``p`` the t test of that mean with the SE from the variance components
and Satterthwaite df, ``p_equivalence`` its two one-sided tests against ``margin``; ``p_wilcoxon``
is a sensitivity column only. The claims are about the seed's six losses: ``losses`` are the
study's seed methods; other methods never enter these families. Everything after (a) on Dice is
one secondary Holm family. Each row has its minimum detectable difference (80% power at its
family's first Holm step, from the row's SE and df) and a verdict (``VERDICTS``):

- ``supported`` / ``contradicted``: Holm p < 0.05, the estimate in / against the claimed direction;
- ``equivalent``: not different, and the Holm-adjusted TOST puts the difference inside +-``margin``;
- ``inconclusive``: none of these: the design could not tell (look at ``mdd``);
- ``not testable here``: the design cannot reach a verdict; ``reason`` says why (a capped
  endpoint, a split with fewer than :data:`hie_core.report.analysis.variance.MIN_VERDICT_CASES` cases, a
  test whose smallest attainable p exceeds its level). Such rows stay out of the Holm families.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hie_core.metrics import BURDEN_STRATA
from hie_core.report.analysis import tables
from hie_core.report.analysis.seed_study import PRIMARY_CONTRASTS, SEED_TABLE
from hie_core.report.analysis.stats import holm
from hie_core.report.analysis.variance import (
    MIN_VERDICT_CASES,
    NOT_TESTABLE,
    detectable,
    paired_contrast,
    stratum_trend,
    untestable_reason,
)

__all__ = ["HYPOTHESIS_COLUMNS", "NOT_TESTABLE", "VERDICTS", "claim_verdicts", "epochs_frame", "hypotheses",
           "verdict"]  # fmt: skip

#: Columns of ``hypotheses_<split>.csv``: the claim, the contrast, the estimate and its test, the
#: variance components of the contrast (SDs) with the SE and df of the mean, the Wilcoxon
#: sensitivity p, ``detail`` (claim d: each stratum's mean and case count) and ``reason``.
HYPOTHESIS_COLUMNS = ("hypothesis", "contrast", "metric", "n_cases", "n_seeds", "estimate", "ci_low", "ci_high",
                      "p_holm", "margin", "mdd", "verdict", "family", "method", "reference", "direction", "p",
                      "p_equivalence", "p_equivalence_holm", "seed_estimate", "reason", "p_wilcoxon", "se", "df",
                      "sd_case", "sd_run", "sd_case_run", "detail")  # fmt: skip
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", NOT_TESTABLE)
#: Equivalence margin of the best epoch (epochs).
EPOCH_MARGIN = 2.0
_SEED_COLUMN = {"dice": 0, "masd_mm": 1, "nsd": 2, "best_epoch": 3}
_STAT_KEYS = ("n_cases", "n_seeds", "estimate", "ci_low", "ci_high", "p", "p_equivalence", "p_wilcoxon", "se", "df",
              "sd_case", "sd_run", "sd_case_run", "reason")  # fmt: skip


def verdict(
    p_holm: float, p_equivalence_holm: float, estimate: float, direction: int, testable: bool = True
) -> str:
    """The verdict of one directional claim (``direction`` +1: the estimate should be positive, -1: negative)."""
    if not testable:
        return NOT_TESTABLE
    if p_holm < tables.ALPHA and math.isfinite(estimate) and estimate != 0:
        return "supported" if np.sign(estimate) == direction else "contradicted"
    if p_equivalence_holm < tables.ALPHA:
        return "equivalent"
    return "inconclusive"


def _seed_difference(method: str, reference: str, metric: str) -> float:
    if method not in SEED_TABLE or reference not in SEED_TABLE or metric not in _SEED_COLUMN:
        return math.nan
    a, b = SEED_TABLE[method][_SEED_COLUMN[metric]], SEED_TABLE[reference][_SEED_COLUMN[metric]]
    return float(a - b) if math.isfinite(a) and math.isfinite(b) else math.nan


def _direction(metric: str) -> int:
    """+1 when "better" means a larger value of ``method - reference`` (Dice, NSD, epochs), else -1."""
    return 1 if metric == "best_epoch" or tables.HIGHER_IS_BETTER[metric] else -1


def _paired_row(key: str, family: str, method: str, reference: str, metric: str, a: np.ndarray, b: np.ndarray,
                margin: float, min_cases: int = MIN_VERDICT_CASES, unit: str = "case") -> dict:  # fmt: skip
    res = paired_contrast(a, b, margin)
    why = untestable_reason(res, min_cases, unit)
    return {"hypothesis": key, "family": family, "contrast": f"{method} - {reference}", "method": method,
            "reference": reference, "metric": metric, "direction": _direction(metric), "margin": margin,
            **{k: res[k] for k in _STAT_KEYS}, "reason": why, "_testable": not why, "detail": "",
            "seed_estimate": _seed_difference(method, reference, metric)}  # fmt: skip


def _metric_contrast(key: str, family: str, method: str, reference: str, metric: str, per_case: pd.DataFrame,
                     runs: pd.DataFrame, split: str, margins: Mapping[str, float]) -> dict:  # fmt: skip
    cases = tables.contrast_cases(per_case, split, metric, [method, reference])
    a = tables.matrix(runs, method, split, metric, cases)
    b = tables.matrix(runs, reference, split, metric, cases)
    return _paired_row(key, family, method, reference, metric, a, b, margins[metric])


def epochs_frame(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """``method``, ``seed``, ``fold``, ``best_epoch``, ``epochs`` (the cap), ``patience`` of each run.

    ``summaries``: each run's ``summary.json`` plus its ``method`` and ``seed`` (and, when known,
    ``epochs`` and ``patience`` from its configuration).
    """
    columns = ["method", "seed", "fold", "best_epoch", "epochs", "patience"]
    rows = [{k: s.get(k) for k in columns} for s in summaries]
    return pd.DataFrame(rows, columns=columns)


def _cap_reason(runs: pd.DataFrame) -> str:
    """Why the best epoch is censored in these runs ("" when it is not)."""
    e = runs.dropna(subset=["epochs"])
    early = e.dropna(subset=["patience"])
    if len(early) and (early["patience"] >= early["epochs"]).any():
        r = early[early["patience"] >= early["epochs"]].iloc[0]
        return (f"early stopping cannot act: patience {int(r['patience'])} ≥ {int(r['epochs'])} epochs, so every "
                "run trains to the cap")  # fmt: skip
    capped = e[e["best_epoch"] >= e["epochs"]]
    if len(capped):
        return (f"best epoch at the {int(capped['epochs'].iloc[0])}-epoch cap in {len(capped)} of {len(e)} runs: "
                "the endpoint is censored")  # fmt: skip
    return ""


def _epoch_contrast(method: str, reference: str, epochs: pd.DataFrame) -> dict:
    e = epochs.dropna(subset=["best_epoch"]).assign(fold=lambda f: f["fold"].fillna(-1))
    e = e[e["method"].isin([method, reference])]
    wide = e.pivot_table(index=["seed", "fold"], columns="method", values="best_epoch", aggfunc="first")
    both = (
        wide[[method, reference]].dropna() if {method, reference} <= set(wide.columns) else wide.iloc[:0, :0]
    )
    a = both[method].to_numpy(float)[:, None] if len(both) else np.zeros((0, 1))
    b = both[reference].to_numpy(float)[:, None] if len(both) else np.zeros((0, 1))
    row = _paired_row("c", "secondary", method, reference, "best_epoch", a, b, EPOCH_MARGIN, 2, "run pair")
    # one value per run pair: its spread is between runs
    row.update(
        sd_run=row["sd_case"], sd_case=math.nan, n_seeds=int(both.index.get_level_values("seed").nunique())
    )
    why = _cap_reason(e) or row["reason"]
    return {**row, "reason": why, "_testable": not why}


def _stratum_detail(means: Mapping[int, float], counts: Mapping[int, int]) -> str:
    return ", ".join(f"{BURDEN_STRATA[g]} {means[g]:.3f} ({counts[g]})" for g in sorted(means))


def _trend_contrast(loss: str, per_case: pd.DataFrame, runs: pd.DataFrame, split: str) -> dict:
    rows = per_case[(per_case["method"] == loss) & (per_case["split"] == split)]
    rows = rows[rows["stratum"].isin(BURDEN_STRATA)]
    cases = rows["case_id"].tolist()
    levels = rows["stratum"].map({s: i for i, s in enumerate(BURDEN_STRATA)}).to_numpy(int)
    m = tables.matrix(runs, loss, split, "dice", cases)
    res = stratum_trend(m, levels) if len(cases) else {
        "n_cases": 0, "n_seeds": 0, "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan,
        "df": math.nan, "p": math.nan, "means": {}, "counts": {}, "reason": "no case with a lesion"}  # fmt: skip
    why = untestable_reason(res)
    return {"hypothesis": "d", "family": "secondary", "contrast": f"{loss}: trend over {', '.join(BURDEN_STRATA)}",
            "method": loss, "reference": loss, "metric": "dice", "direction": 1, "margin": math.nan,
            **{k: res.get(k, math.nan) for k in _STAT_KEYS if k != "reason"}, "p_equivalence": math.nan,
            "p_wilcoxon": math.nan, "sd_case": math.nan, "sd_run": math.nan, "sd_case_run": math.nan,
            "seed_estimate": math.nan, "detail": _stratum_detail(res["means"], res["counts"]), "reason": why,
            "_testable": not why}  # fmt: skip


def _adjust(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table["p_holm"], table["p_equivalence_holm"], table["mdd"] = math.nan, math.nan, math.nan
    testable = table["_testable"].astype(bool)
    for _, idx in table[testable].groupby("family", sort=False).groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p"].to_numpy(float))
        table.loc[idx, "p_equivalence_holm"] = holm(table.loc[idx, "p_equivalence"].to_numpy(float))
        n_tests = int(table.loc[idx, "p"].notna().sum())
        table.loc[idx, "mdd"] = [detectable(se, df, n_tests, tables.ALPHA)
                                 for se, df in zip(table.loc[idx, "se"], table.loc[idx, "df"], strict=True)]  # fmt: skip
    table["verdict"] = [verdict(p, q, e, d, t) for p, q, e, d, t in
                        zip(table["p_holm"], table["p_equivalence_holm"], table["estimate"], table["direction"],
                            testable, strict=True)]  # fmt: skip
    return table.reindex(columns=list(HYPOTHESIS_COLUMNS))


def hypotheses(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, losses: Sequence[str],
               epochs: pd.DataFrame | None = None, margins: Mapping[str, float] = tables.MARGINS) -> pd.DataFrame:  # fmt: skip
    """The seed's claims on ``split`` (see the module docstring); rows only for contrasts whose losses ran.

    Args:
        per_case: :func:`hie_core.report.analysis.tables.seed_average` rows.
        runs: :func:`hie_core.report.analysis.tables.run_scores` rows.
        split: The reported split.
        losses: The seed's methods of the study (loss names; other methods are ignored).
        epochs: :func:`epochs_frame` of the runs (claim c); None leaves claim c out.
        margins: Equivalence margins per metric.

    Returns:
        :data:`HYPOTHESIS_COLUMNS`, primary rows first.
    """
    present = set(per_case.loc[per_case["split"] == split, "method"]) & set(losses)
    pairs = [(m, r) for m, r in PRIMARY_CONTRASTS if {m, r} <= present]
    rows = [_metric_contrast("a", "primary", m, r, "dice", per_case, runs, split, margins) for m, r in pairs]
    rows += [_metric_contrast("a", "secondary", m, r, metric, per_case, runs, split, margins)
             for m, r in pairs for metric in ("masd_mm", "nsd")]  # fmt: skip
    if "tversky_hdt" in present:
        rows += [_metric_contrast("b", "secondary", "tversky_hdt", other, metric, per_case, runs, split, margins)
                 for metric in ("dice", "nsd") for other in losses if other in present and other != "tversky_hdt"]  # fmt: skip
    if epochs is not None and len(epochs):
        rows += [_epoch_contrast(m, r, epochs) for m, r in pairs]
    rows += [_trend_contrast(loss, per_case, runs, split) for loss in losses if loss in present]
    if not rows:
        return pd.DataFrame(columns=list(HYPOTHESIS_COLUMNS))
    return _adjust(rows)


def claim_verdicts(table: pd.DataFrame) -> dict[str, str]:
    """One verdict per claim from its rows (claim a: its primary rows only).

    A claim is ``contradicted`` when any testable row is, ``supported`` / ``equivalent`` when every
    row is, ``not testable here`` when no row is testable, ``inconclusive`` otherwise; a claim
    without rows is ``not tested``.
    """
    out = {}
    for key in ("a", "b", "c", "d"):
        rows = table[table["hypothesis"] == key]
        if key == "a":
            rows = rows[rows["family"] == "primary"]
        v = set(rows["verdict"])
        if rows.empty:
            out[key] = "not tested"
        elif v == {NOT_TESTABLE}:
            out[key] = NOT_TESTABLE
        elif "contradicted" in v:
            out[key] = "contradicted"
        elif v == {"supported"}:
            out[key] = "supported"
        elif v == {"equivalent"}:
            out[key] = "equivalent"
        else:
            out[key] = "inconclusive"
    return out
