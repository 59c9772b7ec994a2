"""The seed's claims tested: one row per claim, contrast and metric, each with a verdict.

The hypotheses were fixed before any run (:data:`hie_core.report.seed_study.CLAIMS`):

- **a** (primary): each hybrid beats its standalone base on Dice with a lesion
  (DiceFocal+HDT vs DiceFocal, Tversky+HDT vs Tversky), Holm over these two tests; the same
  contrasts on MASD and NSD are secondary;
- **b**: Tversky+HDT has the best Dice and NSD: Tversky+HDT against each other loss;
- **c**: the hybrids take longer to converge: the epoch of the best checkpoint, hybrid minus
  base, paired by run (seed, fold);
- **d**: lesions under 1% of the brain are the hardest: per loss, mean Dice of the cases under
  1% minus that of the cases at or above 1% (unpaired: Mann-Whitney U).

The claims are about the seed's six losses on its network: ``losses`` are the study's seed
methods (:attr:`hie_core.report.runs.StudyRuns.seed_methods`); a study's other methods (other
networks, grid values, outside predictions) enter Table 1, P(best) and the exploratory
comparisons, never these families. Everything after (a) on Dice is one secondary Holm family. Each row has its minimum detectable
difference (80% power at its family's first Holm step, from the observed SD) and a verdict:

- ``supported``: Holm p < 0.05 and the estimate in the claimed direction;
- ``contradicted``: Holm p < 0.05 and the estimate against it;
- ``equivalent``: not different, and the two one-sided tests put the difference inside
  +-``margin`` (Holm-adjusted within the family);
- ``inconclusive``: none of these: the design could not tell (look at ``mdd``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hie_core.report import tables
from hie_core.report.display import plural
from hie_core.report.seed_study import PRIMARY_CONTRASTS, SEED_TABLE
from hie_core.report.stats import holm, paired_contrast, unpaired_difference_ci

__all__ = ["HYPOTHESIS_COLUMNS", "VERDICTS", "claim_verdicts", "epochs_frame", "hypotheses", "verdict"]

#: Columns of ``hypotheses_<split>.csv`` (issue 16's, then the family, the claim's direction,
#: the raw and equivalence p-values, the seed's own difference and why a test did not run).
HYPOTHESIS_COLUMNS = ("hypothesis", "contrast", "metric", "n_cases", "n_seeds", "estimate", "ci_low", "ci_high",
                      "p_holm", "margin", "mdd", "verdict", "family", "method", "reference", "direction", "p",
                      "p_equivalence", "p_equivalence_holm", "seed_estimate", "reason")  # fmt: skip
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive")
#: Equivalence margin of the best epoch (epochs).
EPOCH_MARGIN = 2.0
_SEED_COLUMN = {"dice": 0, "masd_mm": 1, "nsd": 2, "best_epoch": 3}


def verdict(p_holm: float, p_equivalence_holm: float, estimate: float, direction: int) -> str:
    """The verdict of one directional claim (``direction`` +1: the estimate should be positive, -1: negative)."""
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
                margin: float) -> dict:  # fmt: skip
    res = paired_contrast(a, b, margin)
    return {"hypothesis": key, "family": family, "contrast": f"{method} - {reference}", "method": method,
            "reference": reference, "metric": metric, "direction": _direction(metric), "n_cases": res["n_cases"],
            "n_seeds": res["n_seeds"], "estimate": res["estimate"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
            "p": res["p"], "p_equivalence": res["p_equivalence"], "margin": margin, "_sd": res["sd"],
            "seed_estimate": _seed_difference(method, reference, metric), "reason": res["reason"]}  # fmt: skip


def _metric_contrast(key: str, family: str, method: str, reference: str, metric: str, per_case: pd.DataFrame,
                     runs: pd.DataFrame, split: str, margins: Mapping[str, float]) -> dict:  # fmt: skip
    cases = tables.contrast_cases(per_case, split, metric, [method, reference])
    a = tables.matrix(runs, method, split, metric, cases)
    b = tables.matrix(runs, reference, split, metric, cases)
    return _paired_row(key, family, method, reference, metric, a, b, margins[metric])


def epochs_frame(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """``method``, ``seed``, ``fold``, ``best_epoch`` of each run (``summary.json`` plus its method and seed)."""
    rows = [{"method": s["method"], "seed": s["seed"], "fold": s.get("fold"), "best_epoch": s.get("best_epoch")}
            for s in summaries]  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "seed", "fold", "best_epoch"])


def _epoch_contrast(method: str, reference: str, epochs: pd.DataFrame) -> dict:
    e = epochs.dropna(subset=["best_epoch"]).assign(fold=lambda f: f["fold"].fillna(-1))
    wide = e.pivot_table(index=["seed", "fold"], columns="method", values="best_epoch", aggfunc="first")
    both = (
        wide[[method, reference]].dropna() if {method, reference} <= set(wide.columns) else wide.iloc[:0, :0]
    )
    a = both[method].to_numpy(float)[:, None] if len(both) else np.zeros((0, 1))
    b = both[reference].to_numpy(float)[:, None] if len(both) else np.zeros((0, 1))
    row = _paired_row("c", "secondary", method, reference, "best_epoch", a, b, EPOCH_MARGIN)
    return {**row, "n_cases": len(both), "n_seeds": int(both.index.get_level_values("seed").nunique())}


def _small_lesion_contrast(loss: str, per_case: pd.DataFrame, split: str) -> dict:
    from scipy.stats import mannwhitneyu

    rows = per_case[(per_case["method"] == loss) & (per_case["split"] == split)]
    rows = rows[rows["stratum"] != tables.EMPTY_STRATUM]
    small = rows.loc[rows["stratum"] == "<1%", "dice"].to_numpy(float)
    large = rows.loc[rows["stratum"] != "<1%", "dice"].to_numpy(float)
    row = {"hypothesis": "d", "family": "secondary", "contrast": f"{loss}: <1% - >=1%", "method": loss,
           "reference": loss, "metric": "dice", "direction": -1, "n_cases": len(small) + len(large),
           "n_seeds": int(rows["n_runs"].max()) if len(rows) else 0, "estimate": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p": math.nan, "p_equivalence": math.nan, "margin": math.nan, "_sd": math.nan,
           "seed_estimate": math.nan, "reason": ""}  # fmt: skip
    if len(small) < 2 or len(large) < 2:
        return {
            **row,
            "reason": f"{plural(len(small), 'case')} under 1% and {len(large)} at or above: no test",
        }
    row["estimate"] = float(small.mean() - large.mean())
    row["ci_low"], row["ci_high"] = unpaired_difference_ci(small, large)
    row["p"] = float(mannwhitneyu(small, large, alternative="two-sided").pvalue)
    # an unpaired contrast: the SD that enters the detectable difference is that of the difference of two means
    row["_sd"] = math.sqrt(small.var(ddof=1) / len(small) + large.var(ddof=1) / len(large)) * math.sqrt(
        row["n_cases"]
    )
    return row


def _adjust(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    for family, idx in table.groupby("family", sort=False).groups.items():
        del family
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p"].to_numpy(float))
        table.loc[idx, "p_equivalence_holm"] = holm(table.loc[idx, "p_equivalence"].to_numpy(float))
        n_tests = int(table.loc[idx, "p"].notna().sum())
        table.loc[idx, "mdd"] = [tables.observed_mdd(sd, n, n_tests)
                                 for sd, n in zip(table.loc[idx, "_sd"], table.loc[idx, "n_cases"], strict=True)]  # fmt: skip
    table["verdict"] = [verdict(p, q, e, d) for p, q, e, d in
                        zip(table["p_holm"], table["p_equivalence_holm"], table["estimate"], table["direction"],
                            strict=True)]  # fmt: skip
    return table.reindex(columns=list(HYPOTHESIS_COLUMNS))


def hypotheses(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, losses: Sequence[str],
               epochs: pd.DataFrame | None = None, margins: Mapping[str, float] = tables.MARGINS) -> pd.DataFrame:  # fmt: skip
    """The seed's claims on ``split`` (see the module docstring); rows only for contrasts whose losses ran.

    Args:
        per_case: :func:`hie_core.report.tables.seed_average` rows.
        runs: :func:`hie_core.report.tables.run_scores` rows.
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
    rows += [_small_lesion_contrast(loss, per_case, split) for loss in losses if loss in present]
    if not rows:
        return pd.DataFrame(columns=list(HYPOTHESIS_COLUMNS))
    return _adjust(rows)


def claim_verdicts(table: pd.DataFrame) -> dict[str, str]:
    """One verdict per claim from its rows (claim a: its primary rows only).

    A claim is ``supported`` when every one of its rows is, ``contradicted`` when any row is,
    ``equivalent`` when every row is, and otherwise ``inconclusive``; a claim without rows is
    ``not tested``.
    """
    out = {}
    for key in ("a", "b", "c", "d"):
        rows = table[table["hypothesis"] == key]
        if key == "a":
            rows = rows[rows["family"] == "primary"]
        v = set(rows["verdict"])
        if rows.empty:
            out[key] = "not tested"
        elif "contradicted" in v:
            out[key] = "contradicted"
        elif v == {"supported"}:
            out[key] = "supported"
        elif v == {"equivalent"}:
            out[key] = "equivalent"
        else:
            out[key] = "inconclusive"
    return out
