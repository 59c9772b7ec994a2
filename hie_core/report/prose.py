"""The abstract and the discussion, written from a study's result files.

Every sentence is computed from ``runs/<study>/results/`` (:class:`~hie_core.report.results.StudyResults`): which loss
ranked first, what the paired tests say after the Holm adjustment, how the strata, the
ceiling and the seeds spread compare, what the design could detect at all. Conclusions come
only from Holm-adjusted p-values and the CIs of paired differences, never from whether two
separate intervals overlap; the best loss is always reported as picked on the test cases it
is scored on. Each branch is covered by ``tests/test_report_prose.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hie_core.preprocess import DEFAULT_TARGET_SHAPE, Grid
from hie_core.report.display import format_ci
from hie_core.report.results import StudyResults
from hie_core.report.runs import run_grid

__all__ = ["ALPHA", "abstract", "best_loss", "discussion", "significant"]

#: Family-wise error rate of the Holm adjustment.
ALPHA = 0.05
_NAMES = {"dice": "Dice", "masd_mm": "MASD", "nsd": "NSD"}
_UNITS = {"dice": "", "masd_mm": " mm", "nsd": ""}
_DIGITS = {"dice": 3, "masd_mm": 2, "nsd": 3}


def best_loss(results: StudyResults, split: str = "test") -> pd.Series:
    """Table 1's row of the loss with the best (lowest) mean rank; ties: the higher mean Dice."""
    t = results.table("table1", split)
    losses = t[t["method"].isin(results.losses)]
    return losses.sort_values(["rank_mean", "dice_mean"], ascending=[True, False], kind="stable").iloc[0]


def significant(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The rows whose Holm-adjusted p is below :data:`ALPHA`."""
    return comparisons[comparisons["p_holm"] < ALPHA]


def _stat(row: pd.Series, metric: str) -> str:
    ci = format_ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], _DIGITS[metric])
    return f"{_NAMES[metric]} {ci}{_UNITS[metric]}"


def _difference(row: pd.Series) -> str:
    m, d = row["metric"], _DIGITS[row["metric"]]
    text = f"{_NAMES[m]} {row['mean_difference']:+.{d}f}{_UNITS[m]}"
    if math.isfinite(row["ci_low"]):
        text += f" [{row['ci_low']:+.{d}f}, {row['ci_high']:+.{d}f}]"
    if math.isfinite(row["p_holm"]):
        text += f", adjusted p = {row['p_holm']:.2g}"
    return text


def _data_phrase(results: StudyResults) -> str:
    info = results.info
    data = "synthetic BONBID-like data" if results.synthetic else "the BONBID-HIE release"
    seeds = len(info["seeds"])
    return (f"On {data} ({results.n_cases('test')} test cases, preset {info['preset']}, "
            f"{seeds} seed{'s' if seeds != 1 else ''} per loss)")  # fmt: skip


def _winner_sentence(results: StudyResults, best: pd.Series) -> str:
    n = len(results.losses)
    stats = ", ".join(_stat(best, m) for m in _NAMES)
    if n == 1:
        return f"{_data_phrase(results)}, the only loss run, **{best['method']}**, scored {stats} (mean [95% CI])."
    return (f"{_data_phrase(results)}, **{best['method']}** ranked first of {n} losses by the challenge's mean rank "
            f"({stats}; mean [95% CI]). It was picked on the same test cases it is scored on, so its lead is "
            "optimistic.")  # fmt: skip


def _versus_dice(results: StudyResults, best: pd.Series) -> str:
    comp = results.table("comparisons", "test")
    if "dice" not in results.losses:
        return "The Dice loss was not run, so no loss is compared with it."
    if best["method"] == "dice":
        others = comp[comp["reference"] == "dice"]
        differing = sorted(set(significant(others)["method"]), key=results.losses.index)
        if not differing:
            return ("The Dice loss itself ranked first; no other loss differs from it on any metric after the Holm "
                    "correction.")  # fmt: skip
        return (f"The Dice loss itself ranked first; after the Holm correction {', '.join(differing)} differ(s) "
                "from it on at least one metric (see the comparisons on the Results page).")  # fmt: skip
    rows = comp[(comp["method"] == best["method"]) & (comp["reference"] == "dice")]
    sig = significant(rows)
    if sig.empty:
        dice = rows[rows["metric"] == "dice"]
        detail = f" (paired {_difference(dice.iloc[0])})" if len(dice) else ""
        return f"Against the Dice loss, no difference survives the Holm correction on any metric{detail}."
    return (
        "Against the Dice loss, after the Holm correction: "
        + "; ".join(_difference(r) for _, r in sig.iterrows())
        + "."
    )


def _versus_baseline(results: StudyResults) -> str:
    t1 = results.table("table1", "test").set_index("method")
    if "baseline" not in t1.index:
        return "The threshold baseline was not evaluated."
    rows = results.table("comparisons", "test")
    rows = rows[(rows["reference"] == "baseline") & (rows["metric"] == "dice")]
    sig = significant(rows)
    better = int((sig["favours"] == sig["method"]).sum())
    worse = int((sig["favours"] == "baseline").sum())
    n = len(rows)
    text = (
        f"Against the organisers' `ZADC < -2` threshold (mean Dice {t1.loc['baseline', 'dice_mean']:.3f}), "
    )
    if better == worse == 0:
        text += f"none of the {n} losses differs in Dice after the Holm correction."
    else:
        text += (f"{better} of {n} losses had a higher Dice and {worse} a lower one after the Holm correction; "
                 f"the other {n - better - worse} did not differ detectably.")  # fmt: skip
    ranked = (
        results.table("table1", "test").dropna(subset=["rank_mean"]).sort_values("rank_mean", kind="stable")
    )
    if ranked["method"].iloc[0] == "baseline":
        text += " On the challenge's ranking the threshold itself came first: no trained loss beat it."
    return text


def _ceiling_sentence(results: StudyResults, best: pd.Series) -> str:
    t1 = results.table("table1", "test").set_index("method")
    if "ceiling" not in t1.index:
        return ""
    c = float(t1.loc["ceiling", "dice_mean"])
    return (f"Sending the reference labels themselves to the training grid and back scores a mean Dice of {c:.3f}: "
            f"the grid alone costs {1 - c:.3f}, and the best loss reached {best['dice_mean'] / c:.0%} of that ceiling.")  # fmt: skip


def abstract(results: StudyResults) -> str:
    """The answer paragraph (Markdown), every sentence from the numbers."""
    best = best_loss(results)
    parts = [_winner_sentence(results, best), _versus_dice(results, best), _versus_baseline(results),
             _ceiling_sentence(results, best)]  # fmt: skip
    if results.synthetic:
        parts.append(
            "These numbers come from synthetic data and check the pipeline; they are not a clinical result."
        )
    return " ".join(p for p in parts if p)


def _spread(results: StudyResults) -> str:
    t1 = results.table("table1", "test")
    losses = t1[t1["method"].isin(results.losses)].sort_values(
        ["rank_mean", "dice_mean"], ascending=[True, False]
    )
    n_runs = int(losses["n_runs"].min())
    if n_runs < 2:
        return ("Each loss ran with one seed, so the run-to-run spread of these numbers is not measured; "
                "`python -m hie_core.study --seeds N` measures it.")  # fmt: skip
    sds = losses["dice_seed_sd"].astype(float)
    widest = losses.loc[sds.idxmax(), "method"]
    text = (f"Over {n_runs} seeds, the between-seed SD of a loss's mean test Dice ranged from {sds.min():.3f} to "
            f"{sds.max():.3f} ({widest}).")  # fmt: skip
    if len(losses) < 2:
        return text
    a, b = losses.iloc[0], losses.iloc[1]
    gap = abs(float(a["dice_mean"]) - float(b["dice_mean"]))
    sd = max(float(a["dice_seed_sd"]), float(b["dice_seed_sd"]))
    within = "within" if gap <= 2 * sd else "beyond"
    return text + (f" The two best-ranked losses, {a['method']} and {b['method']}, differ by {gap:.3f} in mean Dice, "
                   f"{within} twice the larger of their two SDs ({sd:.3f}).")  # fmt: skip


def _power(results: StudyResults) -> str:
    comp = results.table("comparisons", "test")
    tested = comp[comp["p_wilcoxon"].notna()]
    if tested.empty:
        return "No paired test could run (too few complete pairs)."
    m, n = len(tested), int(tested["n_pairs"].max())
    p_min = 2.0 / 2**n
    n_sig = len(significant(comp))
    if m * p_min > ALPHA:
        return (f"With {n} test cases the smallest p-value a two-sided Wilcoxon test can reach is {p_min:.2g}, and "
                f"the Holm correction multiplies the smallest of the {m} tests on the Results page by {m}: no "
                "comparison could have been significant whatever the scores. Telling these losses apart needs "
                "more test cases.")  # fmt: skip
    verb = "remains" if n_sig == 1 else "remain"
    return (
        f"{n_sig} of the {m} paired tests on the Results page {verb} significant after the Holm correction."
    )


def _strata_sentence(results: StudyResults, best: pd.Series) -> str:
    s = results.table("strata", "test")
    rows = s[(s["method"] == best["method"]) & (s["n_cases"] > 0)]
    if len(rows) < 2:
        only = rows["stratum"].iloc[0] if len(rows) else "none"
        return f"All test cases fall in one lesion-burden stratum ({only}), so the strata cannot be compared."
    parts = [f"{r['dice_mean']:.3f} in {r['stratum']} (n = {int(r['n_cases'])})" for _, r in rows.iterrows()]
    low = rows.loc[rows["dice_mean"].idxmin()]
    text = (
        f"For {best['method']}, mean Dice was "
        + ", ".join(parts)
        + f": lowest in the {low['stratum']} stratum"
    )
    base = s[(s["method"] == "baseline") & (s["stratum"] == low["stratum"])]
    if len(base) and math.isfinite(base["dice_mean"].iloc[0]):
        text += f", where the threshold baseline scored {base['dice_mean'].iloc[0]:.3f}"
    text += "."
    if (rows["n_cases"] < 3).any():
        text += " Strata with fewer than 3 cases have no interval."
    return text


def _masd_sentence(results: StudyResults) -> str:
    t1 = results.table("table1", "test")
    undefined = t1[t1["masd_undefined"] > 0]
    if undefined.empty:
        return "MASD was defined for every test case of every method."
    cases = ", ".join(f"{r['method']} ({int(r['masd_undefined'])})" for _, r in undefined.iterrows())
    return ("MASD is undefined when exactly one of prediction and reference is empty; it was undefined for test "
            f"cases of {cases}, which the means skip and the main results table counts (the seed averaged an Inf there).")  # fmt: skip


def _grid_limitation(info: dict) -> str:
    """A sentence when the study's grid is not the seed's: what it bounds, and where that is measured."""
    seed, ours = Grid(shape=DEFAULT_TARGET_SHAPE), run_grid(info["run_config"])
    if ours == seed:
        return ""
    coarser = ours.shape is not None and np.prod(ours.shape) < np.prod(seed.shape)
    relation = "is coarser than" if coarser else "differs from"
    bound = (
        "the ceiling row of the main results table"
        if "ceiling" in info.get("references", [])
        else "no ceiling was measured"
    )
    return (f"This study's grid ({ours.describe()}) {relation} the seed's ({seed.describe()}); every grid bounds the "
            f"Dice of small lesions ({bound}).")  # fmt: skip


def _limitations(results: StudyResults) -> str:
    info = results.info
    t1 = results.table("table1", "test")
    width = (t1["dice_ci_high"] - t1["dice_ci_low"])[t1["method"].isin(results.losses)].max()
    items = ["The best loss was picked on the same test cases it is scored on, so its lead is optimistic."]
    if np.isfinite(width):
        items.append(f"With {results.n_cases('test')} test cases, the 95% CI of a loss's mean Dice is up to "
                     f"{width:.2f} wide.")  # fmt: skip
    grid_item = _grid_limitation(info)
    if grid_item:
        items.append(grid_item)
    if info.get("preset") == "quick":
        items.append("The *quick* preset (a small U-Net for a CPU run) shows that the pipeline works end to end, "
                     "not how well the losses can do.")  # fmt: skip
    if results.n_cases("val"):
        items.append(f"The official validation split has {results.n_cases('val')} cases, too few for a test; it is "
                     "shown for comparison with the seed study.")  # fmt: skip
    if info.get("fingerprints_differ"):
        items.append("The runs were produced by different versions of the code (their fingerprints differ).")
    if info.get("unfinished"):
        items.append(f"Runs that did not finish are missing: {', '.join(info['unfinished'])}.")
    if results.synthetic:
        items.append("Synthetic data show that every step runs and how the losses behave on lesions with known "
                     "truth, not how they compare on real neonatal scans: run the study on the BONBID-HIE release "
                     "for that.")  # fmt: skip
    return "**Limitations.**\n\n" + "\n".join(f"- {item}" for item in items)


def discussion(results: StudyResults) -> str:
    """Discussion and limitations (Markdown paragraphs), every sentence from the numbers."""
    best = best_loss(results)
    paragraphs = [_spread(results), _power(results), _strata_sentence(results, best), _masd_sentence(results),
                  _limitations(results)]  # fmt: skip
    return "\n\n".join(p for p in paragraphs if p)
