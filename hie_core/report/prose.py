"""The abstract and the discussion, written from a study's result files.

Every sentence is computed from ``runs/<study>/results/`` (:class:`~hie_core.report.results.StudyResults`).
What may be concluded follows the pre-specified design (:mod:`hie_core.report.hypotheses`):

- a best loss is named only when ``study.json`` says the tests support it (a primary contrast
  supported and the loss's Dice better than every other loss's after Holm); otherwise the text
  says that no loss was distinguishable and gives each loss's chance of the best mean Dice;
- a test that is not significant is "not detectable" at the design's detectable difference,
  never "no difference"; "equivalent" is said only when the two one-sided tests say it;
- the seed's claims are reported one by one with their verdicts.

Each branch is covered by ``tests/test_report_prose.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hie_core.methods import label_of_id
from hie_core.preprocess import DEFAULT_TARGET_SHAPE, Grid
from hie_core.report.display import format_ci, plural
from hie_core.report.power import ALPHA, TARGET_DICE
from hie_core.report.results import StudyResults
from hie_core.report.runs import run_grid
from hie_core.report.seed_study import CLAIMS

__all__ = ["ALPHA", "abstract", "best_loss", "design_sentence", "discussion", "significant"]

_NAMES = {"dice": "Dice", "masd_mm": "MASD", "nsd": "NSD", "best_epoch": "best epoch"}
_UNITS = {"dice": "", "masd_mm": " mm", "nsd": "", "best_epoch": " epochs"}
_DIGITS = {"dice": 3, "masd_mm": 2, "nsd": 3, "best_epoch": 1}
_REFERENCE_NAMES = {"baseline": "the ZADC < -2 threshold", "ceiling": "the resampling ceiling"}


def _name(method: str, results: StudyResults | None = None) -> str:
    """A method as the prose names it: a reference's words, else its label in ``study.json`` (or its id's)."""
    if method in _REFERENCE_NAMES:
        return _REFERENCE_NAMES[method]
    recorded = results.method_labels.get(method) if results is not None else None
    return recorded or label_of_id(method)


def best_loss(results: StudyResults, split: str = "test") -> pd.Series:
    """Table 1's row of the method with the best (lowest) mean rank; ties: the higher mean Dice."""
    t = results.table("table1", split)
    losses = t[t["method"].isin(results.methods)]
    return losses.sort_values(["rank_mean", "dice_mean"], ascending=[True, False], kind="stable").iloc[0]


def significant(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The rows whose Holm-adjusted p is below :data:`ALPHA`."""
    return comparisons[comparisons["p_holm"] < ALPHA]


def _stat(row: pd.Series, metric: str) -> str:
    ci = format_ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], _DIGITS[metric])
    return f"{_NAMES[metric]} {ci}{_UNITS[metric]}"


def _difference(row: pd.Series, estimate: str = "estimate") -> str:
    m, d = row["metric"], _DIGITS[row["metric"]]
    text = f"{_NAMES[m]} {row[estimate]:+.{d}f}{_UNITS[m]}"
    if math.isfinite(row["ci_low"]):
        text += f" [{row['ci_low']:+.{d}f}, {row['ci_high']:+.{d}f}]"
    if math.isfinite(row["p_holm"]):
        text += f", Holm p = {row['p_holm']:.2g}"
    return text


def _main_split(results: StudyResults) -> str:
    return "test" if results.has("test") else results.splits[0]


def _data_phrase(results: StudyResults, split: str) -> str:
    info = results.info
    data = "synthetic BONBID-like data" if results.synthetic else "the BONBID-HIE release"
    folds = info["design"]["folds"]
    cv = f", {folds}-fold cross-validation" if folds else ""
    where = {"test": "test cases", "cv": "out-of-fold cases", "val": "official validation cases"}[split]
    return (f"On {data} ({results.n_cases(split)} {where}, preset {info['preset']}, "
            f"{plural(len(info['seeds']), 'seed')} per loss{cv})")  # fmt: skip


def _detect(row: pd.Series) -> str:
    m = row["metric"]
    if not math.isfinite(row["mdd"]):
        return "the design could not measure what it can detect"
    return f"this design detects differences of about {row['mdd']:.{_DIGITS[m]}f}{_UNITS[m]} or more"


def _primary_sentence(results: StudyResults, split: str) -> str:
    h = results.table("hypotheses", split)
    primary = h[h["family"] == "primary"]
    if primary.empty:
        return ("The primary contrasts (each hybrid against its base loss) need DiceFocal and DiceFocal+HDT or Tversky "
                "and Tversky+HDT, and this study ran neither pair.")  # fmt: skip
    parts = []
    for _, r in primary.iterrows():
        verdict = r["verdict"]
        words = {"supported": "the hybrid is better", "contradicted": "the hybrid is worse",
                 "equivalent": f"equivalent within +-{r['margin']:g}",
                 "inconclusive": f"not detectable after Holm ({_detect(r)})"}[verdict]  # fmt: skip
        parts.append(
            f"{_name(r['method'], results)} vs {_name(r['reference'], results)}: {_difference(r)}, {words}"
        )
    return (
        f"The pre-specified primary contrasts, Dice on cases with a lesion (Holm over {len(primary)}): "
        + "; ".join(parts)
        + "."
    )


def _winner_sentence(results: StudyResults, split: str) -> str:
    verdict = results.info.get("best_loss", {}).get(split, {})
    t = results.table("table1", split)
    losses = t[t["method"].isin(results.methods)]
    if len(losses) < 2:
        only = losses.iloc[0] if len(losses) else None
        return (
            ""
            if only is None
            else f"The only loss run, {_name(only['method'], results)}, scored {_stat(only, 'dice')}."
        )
    if verdict.get("named"):
        row = losses.set_index("method").loc[verdict["candidate"]]
        return (f"**{_name(verdict['candidate'], results)}** had the best Dice ({format_ci(row['dice_mean'], row['dice_ci_low'], row['dice_ci_high'])}), "
                f"better than every other loss after the Holm correction; it was picked on the cases it is scored on.")  # fmt: skip
    shares = losses.sort_values("p_rank1_dice", ascending=False, kind="stable")
    odds = ", ".join(f"{_name(r['method'], results)} {r['p_rank1_dice']:.0%}" for _, r in shares.iterrows()
                     if math.isfinite(r["p_rank1_dice"]))  # fmt: skip
    text = (
        f"No loss was distinguishable as the best: the tests do not support naming one "
        f"({verdict.get('reason', 'no test')})."
    )
    if odds:
        text += f" Share of bootstrap resamples in which each loss had the highest mean Dice: {odds}."
    return text


def _claims_sentence(results: StudyResults, split: str) -> str:
    verdicts = results.info.get("claims", {}).get(split, {})
    if not verdicts:
        return ""
    parts = [f"({c.key}) {c.text}: **{verdicts.get(c.key, 'not tested')}**" for c in CLAIMS]
    return "The seed study's claims, tested here: " + "; ".join(parts) + "."


def _versus_baseline(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split).set_index("method")
    if "baseline" not in t1.index:
        return "The threshold baseline was not evaluated."
    rows = results.table("comparisons", split)
    rows = rows[(rows["reference"] == "baseline") & (rows["metric"] == "dice")]
    sig = significant(rows)
    better = int((sig["favours"] == sig["method"]).sum())
    worse = int((sig["favours"] == "baseline").sum())
    n = len(rows)
    text = (
        f"Against the organisers' `ZADC < -2` threshold (mean Dice {t1.loc['baseline', 'dice_mean']:.3f}), "
    )
    if better == worse == 0:
        text += f"no loss's Dice differed detectably after the Holm correction (exploratory, {plural(n, 'loss', 'losses')})."
    else:
        text += (
            f"{better} of {n} losses had a higher Dice and {worse} a lower one after the Holm correction "
            "(exploratory)"
        )
        rest = n - better - worse
        text += f"; for the other {rest} a difference was not detectable." if rest else "."
    return text


def _ceiling_sentence(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split).set_index("method")
    if "ceiling" not in t1.index:
        return ""
    c = float(t1.loc["ceiling", "dice_mean"])
    best = t1.loc[t1.index.isin(results.methods), "dice_mean"].max()
    return (f"Sending the reference labels themselves to the training grid and back scores a mean Dice of {c:.3f}, "
            f"an approximate bound for networks trained on that grid (a method scored on the native grid, such as "
            f"the threshold, can beat it on a case); the best loss's mean Dice was {best / c:.0%} of it.")  # fmt: skip


def design_sentence(results: StudyResults, split: str | None = None) -> str:
    """What the design could detect in the primary contrasts, and what reaching 0.02 Dice would take."""
    split = split or _main_split(results)
    h = results.table("hypotheses", split)
    primary = h[(h["family"] == "primary") & h["mdd"].notna()]
    seeds = len(results.info["seeds"])
    if primary.empty:
        return (f"No primary contrast could be measured on the {results.n_cases(split)} cases of this split, so what this design can detect "
                "is unknown; `python -m hie_core.study --plan` projects it before a run.")  # fmt: skip
    mdd = float(primary["mdd"].max())
    n = int(primary["n_cases"].max())  # the cases with a lesion: the primary endpoint's
    observed = float(primary["estimate"].abs().max())
    text = (f"With {n} cases with a lesion x {plural(seeds, 'run')} per loss, the primary contrasts could detect a Dice difference "
            f"of about {mdd:.3f} (80% power, Holm over {len(h[h['family'] == 'primary'])}); the largest observed "
            f"difference was {observed:.3f}.")  # fmt: skip
    if mdd > TARGET_DICE:
        need = math.ceil(n * (mdd / TARGET_DICE) ** 2)
        text += (f" Differences smaller than that, such as {TARGET_DICE} Dice, could not have been detected: that "
                 f"would take about {need} cases at {plural(seeds, 'run')} each, or more runs per case "
                 "(`python -m hie_core.study --plan --design powered`).")  # fmt: skip
    else:
        text += f" It could detect a difference of {TARGET_DICE} Dice."
    return text


def abstract(results: StudyResults) -> str:
    """The answer paragraph (Markdown), every sentence from the numbers."""
    split = _main_split(results)
    parts = [_data_phrase(results, split) + ":", _primary_sentence(results, split), design_sentence(results, split),
             _winner_sentence(results, split), _claims_sentence(results, split), _versus_baseline(results, split),
             _ceiling_sentence(results, split)]  # fmt: skip
    if results.synthetic:
        parts.append(
            "These numbers come from synthetic data and check the pipeline; they are not a clinical result."
        )
    return " ".join(p for p in parts if p)


def _spread(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split)
    losses = t1[t1["method"].isin(results.losses)]
    n_seeds = len(results.info["seeds"])
    if n_seeds < 2:
        return ("Each loss ran with one seed, so the run-to-run spread of these numbers is not measured; "
                "`python -m hie_core.study --seeds N` measures it.")  # fmt: skip
    sds = losses["dice_seed_sd"].astype(float)
    widest = losses.loc[sds.idxmax(), "method"]
    return (f"Over {n_seeds} seeds, the between-seed SD of a loss's mean Dice ranged from {sds.min():.3f} to "
            f"{sds.max():.3f} ({_name(widest, results)}); the intervals above carry this spread, since they resample runs "
            "within cases.")  # fmt: skip


def _power(results: StudyResults, split: str) -> str:
    h = results.table("hypotheses", split)
    comp = results.table("comparisons", split)
    parts = []
    for label, table, p_column in (("secondary hypothesis tests", h[h["family"] == "secondary"], "p"),
                                   ("exploratory comparisons", comp, "p_wilcoxon")):  # fmt: skip
        tested = table[table[p_column].notna()] if len(table) else table
        if len(tested):
            n_sig = int((tested["p_holm"] < ALPHA).sum())
            parts.append(f"{n_sig} of the {len(tested)} {label}")
    if not parts:
        return "No paired test could run (too few complete pairs)."
    equivalent = int((comp["verdict"] == "equivalent").sum()) if len(comp) else 0
    return ("After the Holm correction within each family, " + " and ".join(parts) + " reached p < 0.05; "
            f"{equivalent} exploratory comparisons were shown equivalent within their margins. A test that did not "
            "reach significance means the difference was not detectable with this design, not that there was none.")  # fmt: skip


def _strata_sentence(results: StudyResults, split: str) -> str:
    s = results.table("strata", split)
    h = results.table("hypotheses", split)
    rows = s[s["method"].isin(results.losses) & (s["stratum"] != "empty label") & (s["n_cases"] > 0)]
    if rows["stratum"].nunique() < 2:
        only = rows["stratum"].iloc[0] if len(rows) else "none"
        return f"All cases with a lesion fall in one lesion-burden stratum ({only}), so the strata cannot be compared."
    means = rows.groupby("stratum", sort=False)["dice_mean"].mean()
    counts = rows.groupby("stratum", sort=False)["n_cases"].max()
    parts = [f"{means[k]:.3f} in {k} (n = {int(counts[k])})" for k in means.index]
    text = "Averaged over the losses, mean Dice was " + ", ".join(parts) + "."
    d = h[h["hypothesis"] == "d"]
    if len(d):
        counts_v = d["verdict"].value_counts()
        text += (" The seed's claim that lesions under 1% are the hardest was " + ", ".join(
            f"{v} for {plural(int(c), 'loss', 'losses')}" for v, c in counts_v.items()) + ".")  # fmt: skip
    if (rows["n_cases"] < 5).any():
        text += " Strata with fewer than 5 cases have no interval."
    return text


def _masd_sentence(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split)
    ranked = t1[~t1["method"].isin(["ceiling"])]
    undefined = ranked[ranked["masd_undefined_runs"] > 0]
    if undefined.empty:
        return "MASD was defined for every case with a lesion in every run of every method."
    runs = ", ".join(f"{_name(r['method'], results)} ({int(r['masd_undefined'])} cases, {int(r['masd_undefined_runs'])} "
                     "case-runs)" for _, r in undefined.iterrows())  # fmt: skip
    n_common = int(ranked["masd_cases"].min())
    changed = (ranked["rank_mean"] != ranked["rank_mean_worst"]).any()
    effect = "changes the mean ranks" if changed else "leaves the mean ranks as they are"
    return ("MASD is undefined when exactly one of prediction and reference is empty, and a case counts as undefined "
            f"for a method when it is in any of its runs: {runs}. MASD means and ranks use the {n_common} cases "
            "defined for every ranked method; giving each undefined case-run the largest MASD of the split instead "
            f"(a worst-case sensitivity analysis) {effect}.")  # fmt: skip


def _empty_sentence(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split)
    losses = t1[t1["method"].isin(results.methods)]
    n_empty = int(t1["empty_cases"].max()) if len(t1) else 0
    if n_empty == 0:
        return ""
    parts = ", ".join(f"{_name(r['method'], results)} {int(r['fp_cases'])}" for _, r in losses.iterrows())
    return (f"{plural(n_empty, 'case')} had an empty reference label; they are left out of the Dice means (a handful "
            f"of voxels would score them 0 or 1) and counted as false positives instead. Cases of these with any "
            f"predicted lesion: {parts}.")  # fmt: skip


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
    return (f"This study's grid ({ours.describe()}) {relation} the seed's ({seed.describe()}); a grid limits the "
            f"Dice a network trained on it can reach on small lesions, approximately ({bound}).")  # fmt: skip


def _limitations(results: StudyResults, split: str) -> str:
    info = results.info
    t1 = results.table("table1", split)
    width = (t1["dice_ci_high"] - t1["dice_ci_low"])[t1["method"].isin(results.losses)].max()
    items = []
    if np.isfinite(width):
        items.append(
            f"With {results.n_cases(split)} cases, the 95% CI of a loss's mean Dice is up to {width:.2f} wide."
        )
    grid_item = _grid_limitation(info)
    if grid_item:
        items.append(grid_item)
    if info.get("preset") in ("quick", "native"):
        items.append(f"The *{info['preset']}* preset's settings (ZADC scale, mirroring, epochs, patience) were chosen by "
                     "comparing variants scored on the synthetic test split that this book reports "
                     "(benchmarks/README.md); they have not yet been chosen again on the development set, so the "
                     "preset's scores are slightly flattered. Early stopping itself used only the selection set.")  # fmt: skip
    if info.get("preset") == "quick":
        items.append("The *quick* preset (a small U-Net for a CPU run) shows that the pipeline works end to end, "
                     "not how well the losses can do.")  # fmt: skip
    if results.has("val"):
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
    split = _main_split(results)
    paragraphs = [_spread(results, split), _power(results, split), _strata_sentence(results, split), _masd_sentence(results, split), _empty_sentence(results, split),
                  _limitations(results, split)]  # fmt: skip
    return "\n\n".join(p for p in paragraphs if p)
