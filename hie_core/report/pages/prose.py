"""The abstract and the discussion, written from a study's result files.

Every sentence is computed from ``runs/<study>/results/`` (:class:`~hie_core.report.analysis.results.StudyResults`).
What may be concluded follows the analysis plan (``book/analysis-plan.md``; :mod:`hie_core.report.analysis.hypotheses`):

- a best loss is named only when ``study.json`` says the tests support it (its Dice better than
  every other loss's in the paired tests, all of them); otherwise the text says that no loss was
  distinguishable and gives each loss's chance of the best mean Dice;
- a test that is not significant is "not detectable" at the design's detectable difference,
  never "no difference"; "equivalent" is said only when the two one-sided tests say it; a row
  the design cannot decide is "not testable here", with its reason;
- the seed's claims are reported one by one with their verdicts;
- what the intervals carry, what the design detects and what reaching the target would take
  are computed from the study's variance components (case, run, case × run).

Each branch is covered by ``tests/test_report_prose.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hie_core.methods import label_of_id
from hie_core.report.analysis.power import ALPHA
from hie_core.report.analysis.results import StudyResults
from hie_core.report.analysis.runs import run_grid, seed_grid
from hie_core.report.analysis.seed_study import CLAIMS
from hie_core.report.analysis.study_records import StudyConfig
from hie_core.report.pages.design_prose import design_sentence
from hie_core.report.viewers.display import format_ci, plural

__all__ = ["ALPHA", "abstract", "best_loss", "discussion", "other_splits", "significant"]

#: The verdict of a row the design cannot decide (:data:`hie_core.report.analysis.hypotheses.NOT_TESTABLE`).
NOT_TESTABLE = "not testable here"

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
    """The rows whose Holm-adjusted p is below ``ALPHA``."""
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
    info = results.config
    data = "synthetic BONBID-like data" if results.synthetic else "the BONBID-HIE release"
    folds = info.design.folds
    cv = f", {folds}-fold cross-validation" if folds else ""
    where = {"test": "test cases", "cv": "out-of-fold cases", "val": "official validation cases"}[split]
    return (f"On {data} ({results.n_cases(split)} {where}, preset {info.preset}, "
            f"{plural(len(info.seeds), 'seed')} per loss{cv})")  # fmt: skip


def _reason(row: pd.Series) -> str:
    reason = row.get("reason")
    return str(reason) if isinstance(reason, str) and reason else "the design cannot reach a verdict"


def _detect(row: pd.Series) -> str:
    m = row["metric"]
    if not math.isfinite(row["mdd"]):
        return "the design could not measure what it can detect"
    if m in ("dice", "nsd") and row["mdd"] >= 1:  # a difference of two scores in [0, 1] is below 1
        return (f"this design cannot detect any possible difference (its detectable difference, "
                f"{row['mdd']:.{_DIGITS[m]}f}, exceeds the metric's whole range)")  # fmt: skip
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
                 "equivalent": f"equivalent within ±{r['margin']:g}",
                 "inconclusive": f"not detectable after Holm ({_detect(r)})",
                 NOT_TESTABLE: f"not testable here ({_reason(r)})"}[verdict]  # fmt: skip
        parts.append(
            f"{_name(r['method'], results)} vs {_name(r['reference'], results)}: {_difference(r)}, {words}"
        )
    return (
        f"The analysis plan's primary contrasts, Dice on cases with a lesion (Holm over {len(primary)}): "
        + "; ".join(parts)
        + "."
    )


def _winner_sentence(results: StudyResults, split: str) -> str:
    verdict = results.config.best_loss.get(split, {})
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
                f"better than every other loss's in the paired tests (each at the {ALPHA:g} level; all had to hold); it was "
                "picked on the cases it is scored on.")  # fmt: skip
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
    verdicts = results.config.claims.get(split, {})
    if not verdicts:
        return ""
    h = results.table("hypotheses", split)
    parts = []
    for c in CLAIMS:
        verdict = verdicts.get(c.key, "not tested")
        text = f"({c.key}) {c.text}: **{verdict}**"
        if verdict == NOT_TESTABLE and "reason" in h:
            reasons = [r for r in dict.fromkeys(h.loc[h["hypothesis"] == c.key, "reason"].dropna()) if r]
            text += f" ({'; '.join(reasons)})" if reasons else ""
        parts.append(text)
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
    losses = t1.loc[t1.index.isin(results.methods), "dice_mean"]
    if losses.empty:
        return ""
    verdict = results.config.best_loss.get(split, {})
    top = losses.idxmax()
    if verdict.get("named") and verdict.get("candidate") in losses.index:
        top = verdict["candidate"]
        whose = (
            f"the mean Dice of the best loss, {_name(top, results)}, was {float(losses[top]) / c:.0%} of it."
        )
    elif len(losses) > 1:
        whose = (f"the highest mean Dice of any loss, {_name(top, results)}'s {float(losses[top]):.3f}, was "
                 f"{float(losses[top]) / c:.0%} of it, though no loss was distinguishable as the best.")  # fmt: skip
    else:
        whose = f"the only loss's mean Dice was {float(losses[top]) / c:.0%} of it."
    return (f"Sending the reference labels themselves to the training grid and back scores a mean Dice of {c:.3f}, "
            f"an approximate bound for networks trained on that grid (a method scored on the native grid, such as "
            f"the threshold, can beat it on a case); {whose}")  # fmt: skip


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
    """The run-to-run spread, the variance components of the primary contrasts, and what the intervals carry."""
    t1 = results.table("table1", split)
    losses = t1[t1["method"].isin(results.losses)]
    n_seeds = len(results.config.seeds)
    if n_seeds < 2:
        return ("Each loss ran with one seed, so the run-to-run spread of these numbers is not measured and the "
                "intervals carry the case-to-case spread alone; `python -m hie_core.study --seeds N` measures it.")  # fmt: skip
    sds = losses["dice_seed_sd"].astype(float)
    widest = losses.loc[sds.idxmax(), "method"]
    text = (f"Over {n_seeds} seeds, the between-seed SD of a loss's mean Dice ranged from {sds.min():.3f} to "
            f"{sds.max():.3f} ({_name(widest, results)}).")  # fmt: skip
    bootstrap = str(results.config.statistics.get("bootstrap", ""))
    if "pigeonhole" in bootstrap:
        text += (" The intervals carry this spread: every case is scored by the same trained models, so the bootstrap "
                 "resamples runs as well as cases, independently (the pigeonhole bootstrap).")  # fmt: skip
    else:
        text += f" The intervals come from this bootstrap: {bootstrap}." if bootstrap else ""
    parts = [f"{_name(c['contrast'].split(' - ')[0], results)} - {_name(c['contrast'].split(' - ')[1], results)}: "
             f"case {c['sd_case']:.3f}, run {c['sd_run']:.3f}, case × run {c['sd_case_run']:.3f}"
             for c in results.config.variance_components.get(split, [])
             if all(isinstance(c.get(k), (int, float)) and math.isfinite(c[k]) for k in ("sd_case", "sd_run", "sd_case_run"))]  # fmt: skip
    if parts:
        text += (" SDs of the paired Dice difference of the primary contrasts, by variance component (method of "
                 "moments): " + "; ".join(parts) + ".")  # fmt: skip
    return text


def _power(results: StudyResults, split: str) -> str:
    h = results.table("hypotheses", split)
    comp = results.table("comparisons", split)
    parts = []
    for label, table in (("secondary hypothesis tests", h[h["family"] == "secondary"]),
                         ("exploratory comparisons", comp)):  # fmt: skip
        tested = table[table["p"].notna()] if len(table) and "p" in table else table.iloc[:0]
        if len(tested):
            n_sig = int((tested["p_holm"] < ALPHA).sum())
            parts.append(f"{n_sig} of the {len(tested)} {label}")
    if not parts:
        return "No paired test could run (too few complete pairs)."
    equivalent = int((comp["verdict"] == "equivalent").sum()) if len(comp) else 0
    untestable = int((h["verdict"] == NOT_TESTABLE).sum()) if len(h) else 0
    text = ("After the Holm correction within each family, " + " and ".join(parts) + " reached p < 0.05 (t tests on "
            f"the mean difference); {equivalent} exploratory comparisons were shown equivalent within their margins.")  # fmt: skip
    if untestable:
        text += f" {plural(untestable, 'hypothesis row')} could not be tested with this design (not testable here)."
    return text + (" A test that did not reach significance means the difference was not detectable with this design, "
                   "not that there was none.")  # fmt: skip


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
            f"{v} for {plural(int(c), 'loss', 'losses')}" for v, c in counts_v.items()))  # fmt: skip
        reasons = [r for r in dict.fromkeys(d.loc[d["verdict"] == NOT_TESTABLE, "reason"].dropna()) if r]
        text += f" ({'; '.join(reasons)})." if reasons else "."
    if (rows["n_cases"] < 5).any():
        text += " Strata with fewer than 5 cases have no interval."
    return text


def _masd_sentence(results: StudyResults, split: str) -> str:
    t1 = results.table("table1", split)
    ranked = t1[~t1["method"].isin(["ceiling"])]
    undefined = ranked[ranked["masd_undefined_runs"] > 0]
    if undefined.empty:
        return "MASD was defined for every case with a lesion in every run of every method."
    runs = ", ".join(f"{_name(r['method'], results)} ({plural(int(r['masd_undefined']), 'case')}, "
                     f"{plural(int(r['masd_undefined_runs']), 'case-run')})" for _, r in undefined.iterrows())  # fmt: skip
    counts = ", ".join(f"{_name(r['method'], results)} {int(r['masd_cases'])} of {int(r['n_cases'])}"
                       for _, r in ranked.iterrows() if math.isfinite(r["masd_cases"]))  # fmt: skip
    changed = (ranked["rank_mean"] != ranked["rank_mean_worst"]).any()
    effect = "changes the mean ranks" if changed else "leaves the mean ranks as they are"
    return ("MASD is undefined when exactly one of prediction and reference is empty, and a case counts as undefined "
            f"for a method when it is in any of its runs: {runs}. As in the challenge, each method's MASD mean and "
            f"rank use its own cases where MASD is defined ({counts}), so one method's failures do not change another's "
            f"numbers; giving each undefined case-run the largest MASD of the split instead (a worst-case sensitivity "
            f"analysis) {effect}.")  # fmt: skip


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


def _grid_limitation(info: StudyConfig) -> str:
    """A sentence when the study's grid is not the seed's: what it bounds, and where that is measured."""
    seed, ours = seed_grid(), run_grid(info.run_config)
    if ours == seed:
        return ""
    coarser = ours.shape is not None and np.prod(ours.shape) < np.prod(seed.shape)
    relation = "is coarser than" if coarser else "differs from"
    bound = (
        "the ceiling row of the main results table"
        if "ceiling" in info.references
        else "no ceiling was measured"
    )
    return (f"This study's grid ({ours.describe()}) {relation} the seed's ({seed.describe()}); a grid limits the "
            f"Dice a network trained on it can reach on small lesions, approximately ({bound}).")  # fmt: skip


def _preset_limitation(preset: str) -> str:
    """How the quick (or native) preset's settings were chosen, with the development-set numbers."""
    from hie_core.report.pages.preset_dev import dev_check, dev_check_words

    text = (f"The *{preset}* preset's settings (normalisation, learning rate, ZADC scale, mirroring, epochs, patience) "
            "were first chosen by comparing variants scored on the synthetic test split that this book reports "
            "(benchmarks/README.md)")  # fmt: skip
    if preset == "native":
        text += ", on the quick preset, and taken over"
    check = dev_check()
    words = dev_check_words(check)
    if not words:
        return text + ("; they have not been checked on the development set, so the preset's scores are slightly "
                       "flattered. Early stopping itself used only the selection set.")  # fmt: skip
    return (text + f". They were then checked against {'an alternative' if len(check['decision']['variants']) <= 2 else 'alternatives'} they had been chosen over: " + words[0].lower() + words[1:] +
            " Settings that were not re-checked may still flatter these scores slightly. Early stopping itself used "
            "only the selection set.")  # fmt: skip


def _limitations(results: StudyResults, split: str) -> str:
    info = results.config
    t1 = results.table("table1", split)
    losses = t1[t1["method"].isin(results.losses)]
    width = (losses["dice_ci_high"] - losses["dice_ci_low"]).max()
    items = []
    if np.isfinite(width):
        n_lesion = int(losses["n_cases"].max())
        items.append(f"With {plural(n_lesion, 'case')} with a lesion × {plural(len(info.seeds), 'run')} per loss, the 95% CI "
                     f"of a loss's mean Dice is up to {width:.2f} wide.")  # fmt: skip
    grid_item = _grid_limitation(info)
    if grid_item:
        items.append(grid_item)
    if info.preset in ("quick", "native"):
        items.append(_preset_limitation(info.preset))
    if info.preset == "quick":
        items.append("The *quick* preset (a small U-Net for a CPU run) shows that the pipeline works end to end, "
                     "not how well the losses can do.")  # fmt: skip
    if results.has("val"):
        items.append(f"The official validation split has {plural(results.n_cases('val'), 'case')}, too few for a test; it is "
                     "shown for comparison with the seed study.")  # fmt: skip
    if info.fingerprints_differ:
        items.append("The runs were produced by different versions of the code (their fingerprints differ).")
    if info.unfinished:
        items.append(f"Runs that did not finish are missing: {', '.join(info.unfinished)}.")
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


def other_splits(results: StudyResults, splits: tuple[str, ...] = ("cv", "val")) -> str:
    """One paragraph on the splits beside the test split: those reported (shown in the tables under
    it, with their case counts), and those not, each with how a study reports it. Said once here,
    so the Results page shows no empty table for a split the study did not report
    (the Results page's ``results_page.table1`` shows nothing for one)."""
    from hie_core.report.pages.results_page import _HOW_TO_REPORT, split_label

    shown = [f"{split_label(s)} ({plural(results.n_cases(s), 'case')})" for s in splits if results.has(s)]
    missing = [s for s in splits if not results.has(s)]
    text = [f"The tables below give the main results on the {' and the '.join(shown)}." if shown else ""]
    for split in missing:
        how = _HOW_TO_REPORT.get(split, "").removesuffix(".")
        label = split_label(split) + ("" if split_label(split).endswith("split") else " results")
        how = how.replace("reports it", "reports them") if label.endswith("results") else how
        text.append(f"This study did not report the {label}" + (f": {how[0].lower()}{how[1:]}." if how else "."))
    return " ".join(t for t in text if t)
