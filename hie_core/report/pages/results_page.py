"""The Intro and Results pages: one call per section, each one table, figure or paragraph.

Numbers come only from ``runs/<study>/results/`` (read once by :func:`hie_core.report.analysis.study_model.load_study`);
the run folders are read only for what the result files do not hold: training curves and the
saved masks of Figure 6. Each function displays (or returns) one output that stands alone
when the book folds the code away: its note names the source, the counts and the units.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from hie_core.methods import label_of_id
from hie_core.metrics import METRIC_LABELS
from hie_core.report.analysis import seed_study
from hie_core.report.analysis.results import StudyResults
from hie_core.report.analysis.runs import REFERENCES, StudyFolderError
from hie_core.report.analysis.study_model import load_study
from hie_core.report.analysis.tables import MIN_STRATUM_CI
from hie_core.report.analysis.variance import NOT_TESTABLE
from hie_core.report.pages import prose
from hie_core.report.pages.sources import DataSource, banner, source_line, study_dir_for
from hie_core.report.viewers import display
from hie_core.report.viewers.charts import table1_figure

__all__ = [
    "abstract", "comparisons_table", "design_note",
    "hypotheses_table", "masd_sensitivity_table", "method_label", "open_results", "per_case_table", "seed_table", "source_of",
    "split_label", "strata_table", "study_banner", "table1", "table1_chart",
]  # fmt: skip

_METRIC_HEAD = {**METRIC_LABELS, "best_epoch": "best epoch"}
#: How the tables name the two reference rows for a reader (the files keep the short keys).
METHOD_LABELS = {"baseline": "ZADC < -2 (baseline)", "ceiling": "label resampled (ceiling)"}
_DIGITS = {"dice": 3, "masd_mm": 2, "nsd": 3, "best_epoch": 1}
_SPLIT_LABELS = {
    "test": "test split",
    "cv": "out-of-fold (cross-validation)",
    "val": "official validation split",
}


def open_results(study_dir: str = "", preset: str = "auto") -> StudyResults:
    """The result files of a study (``study_dir`` or ``runs/<preset>``); a clear error if absent."""
    return load_study(study_dir_for(study_dir, preset)).require_results()


def source_of(results: StudyResults) -> DataSource:
    """The data source ``study.json`` records (synthetic from the folder's manifest)."""
    from pathlib import Path

    return DataSource(Path(results.config.data_dir), results.synthetic)


def _provenance(results: StudyResults) -> str:
    # the device is said once, in the page's banner (study_banner), not under every table
    return source_line(source_of(results), results.config.preset)


#: How a study reports a split it did not (the note of that split's empty table).
_HOW_TO_REPORT = {
    "cv": "A study run with --folds K reports it.",
    "val": "A study without cross-validation reports it.",
}


def split_label(split: str) -> str:
    """A split as a reader reads it."""
    return _SPLIT_LABELS.get(split, split)


def study_banner(results: StudyResults) -> None:
    """The page-top note: data source, preset, seeds, folds, devices, reported splits and their sizes."""
    info = results.config
    devices = info.devices
    folds = info.design.folds
    design = f"{display.plural(len(info.seeds), 'seed')} per loss" + (
        f", {folds}-fold cross-validation" if folds else ""
    )
    splits = "; ".join(
        f"{split_label(s)} ({display.plural(results.n_cases(s), 'case')})" for s in results.splits
    )
    details = f"Preset {info.preset}; {design}; device: {devices}. Reported: {splits}."
    banner(source_of(results), details, list(info.unfinished))


def abstract(results: StudyResults):
    """The answer paragraph (:func:`hie_core.report.pages.prose.abstract`) as Markdown."""
    return display.markdown(prose.abstract(results))


def design_note(results: StudyResults):
    """What this design could detect (:func:`hie_core.report.pages.design_prose.design_sentence`) as Markdown."""
    return display.markdown(prose.design_sentence(results))


def method_label(method: str, results: StudyResults | None = None) -> str:
    """A method's name in the book: what ``study.json`` records for it (:func:`hie_core.methods.method_label`
    of its runs' ``config.json``), what a reference row is, or else the name its id spells."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    recorded = results.method_labels.get(method) if results is not None else None
    return recorded or label_of_id(method)


def _labels(methods: pd.Series, results: StudyResults | None = None) -> pd.Series:
    return methods.map(lambda m: method_label(m, results))


def _ci_column(frame: pd.DataFrame, metric: str) -> pd.Series:
    cols = [f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high")]
    return frame[cols].apply(lambda r: display.format_ci(*r, digits=_DIGITS[metric], html_break=True), axis=1)


def _share(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0%}"


def table1(results: StudyResults, split: str = "test"):
    """Table 1: n, mean [95% CI] of each metric, ranks, P(best Dice), seed SD and false positives, one row per method.

    None (the cell shows nothing, so the book numbers no empty table) when the study did not report
    ``split``: :func:`hie_core.report.pages.prose.other_splits` says so once, in a sentence.
    """
    if not results.has(split):
        return None
    t = results.table("table1", split)
    shown = pd.DataFrame(
        {"method": _labels(t["method"], results), "cases with a lesion": t["n_cases"], "runs": t["n_runs"]}
    )
    for metric in ("dice", "masd_mm", "nsd"):
        shown[_METRIC_HEAD[metric]] = _ci_column(t, metric)
        if metric == "masd_mm":
            shown["MASD cases"] = [
                f"{int(n)}"
                + (
                    f"; undefined in {display.plural(int(c), 'case')}, {display.plural(int(r), 'case-run')}"
                    if r
                    else ""
                )
                for n, c, r in zip(
                    t["masd_cases"], t["masd_undefined"], t["masd_undefined_runs"], strict=True
                )
            ]
    shown["mean rank"] = t["rank_mean"].map(_rank_text)
    shown["P(best Dice)"] = t["p_rank1_dice"].map(_share)
    shown["seed SD of Dice"] = t["dice_seed_sd"]
    n_empty = int(t["empty_cases"].max()) if len(t) else 0
    if n_empty:
        shown["false positives on empty labels"] = [
            f"{int(c)} of {n_empty}, {v:.2f} mL" if math.isfinite(v) else f"{int(c)} of {n_empty}"
            for c, v in zip(t["fp_cases"], t["fp_volume_ml_mean"], strict=True)]  # fmt: skip
    note = (f"Cases with a lesion of the {split_label(split)}; runs: seeds × folds scored per case. Mean [95% CI] over "
            "cases and runs; the interval is the pigeonhole bootstrap's, which resamples cases and runs "
            "independently (a trained model's shift is shared by every case it scores). Dice and NSD over every "
            "case with a lesion; MASD, as the challenge averages it, over each method's own cases where its MASD is "
            "defined in every one of its runs (the count beside it; undefined: one mask empty), so no method's "
            "failures change another's mean. Mean rank: the challenge's mean of the Dice, MASD and NSD ranks "
            "(1 = best) with these MASD means; the ceiling is not ranked; the MASD sensitivity table below ranks with "
            "the worst case imputed instead. P(best Dice): share of bootstrap resamples in which the method has the "
            "highest mean Dice. Seed SD: SD of the mean Dice over seeds. Cases with an empty reference label are "
            "left out of every mean and scored by their false positives (cases with any predicted voxel, mean "
            f"predicted volume). {_provenance(results)}.")  # fmt: skip
    return display.table(
        shown, precision=3, note=note, html_columns=[_METRIC_HEAD[m] for m in ("dice", "masd_mm", "nsd")]
    )


def _rank_text(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def masd_sensitivity_table(results: StudyResults, split: str = "test"):
    """MASD two ways: the challenge's mean over each method's defined cases, and every undefined case-run
    given the split's largest MASD (worst case), with the mean rank each gives."""
    t = results.table("table1", split)
    t = t[t["method"] != "ceiling"]
    worst = t[["masd_mm_worst_mean", "masd_mm_worst_ci_low", "masd_mm_worst_ci_high"]]
    shown = pd.DataFrame({
        "method": _labels(t["method"], results),
        "MASD (mm), defined cases": _ci_column(t, "masd_mm"), "cases": t["masd_cases"].astype(int),
        "MASD (mm), worst case imputed": worst.apply(lambda r: display.format_ci(*r, digits=2, html_break=True),
                                                     axis=1),
        "undefined case-runs": t["masd_undefined_runs"].astype(int),
        "mean rank (challenge)": t["rank_mean"].map(_rank_text),
        "mean rank (worst case)": t["rank_mean_worst"].map(_rank_text),
    })  # fmt: skip
    note = ("Sensitivity of the MASD endpoint: left, the challenge's rule (each method's mean over the cases with a "
            "lesion where its MASD is defined in every run; Table 1 uses it); right, every undefined case-run (one "
            "mask empty) given the largest MASD of the split, so a method that misses lesions is penalised. Mean "
            "rank: the challenge's mean of the Dice, MASD and NSD ranks with each MASD. "
            f"{_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note,
                         html_columns=["MASD (mm), defined cases", "MASD (mm), worst case imputed"])  # fmt: skip


def table1_chart(results: StudyResults, split: str = "test", div_id: str = "table1-figure") -> None:
    """Table 1 as a figure: mean and 95% CI per method and metric, baseline and ceiling as lines."""
    t = results.table("table1", split).copy()
    t["method"] = t["method"].map(  # the references keep their keys (line styles)
        lambda m: m if m in REFERENCES else method_label(m, results)
    )
    display.show(table1_figure(t), div_id)


def _contrast_label(method: str, reference: str, results: StudyResults | None = None) -> str:
    return f"{method_label(method, results)} vs {method_label(reference, results)}"


def _difference(frame: pd.DataFrame, estimate: str, metric_of) -> pd.Series:
    return frame.apply(lambda r: display.format_ci(r[estimate], r["ci_low"], r["ci_high"], _DIGITS[metric_of(r)],
                                                   html_break=True, signed=True), axis=1)  # fmt: skip


def _number(value: float, digits: int, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def hypotheses_table(results: StudyResults, split: str = "test", claims: str = ""):
    """The seed's claims tested: one row per claim, contrast and metric, with the detectable difference and verdict.

    ``claims``: the letters of the claims to show (``"a"``, ``"cd"``); empty: every claim. The
    CSV link under the table downloads these rows of ``hypotheses_<split>.csv`` as they are.
    """
    h = results.table("hypotheses", split)
    if claims:
        h = h[h["hypothesis"].isin(list(claims))].reset_index(drop=True)
    if h.empty:
        return display.markdown(
            "No claim of the seed could be tested: the study ran none of the losses they name."
        )

    def contrast(r) -> str:
        first = method_label(r["method"], results)
        second = (
            "trend over <1%, 1-5%, >5% of the brain"
            if r["hypothesis"] == "d"
            else f"vs {method_label(r['reference'], results)}"
        )
        metric = _METRIC_HEAD[r["metric"]]
        extra = f"<br><small>{html.escape(r['detail'])}</small>" if r.get("detail") else ""
        return f"{html.escape(first)}<br>{html.escape(second)}<br><small>{html.escape(metric)}</small>{extra}"

    def design(n, s, m) -> str:
        return display.plural(int(n), "paired run") if m == "best_epoch" else f"{int(n)} x {int(s)}"

    def judged(v, reason) -> str:
        return (
            f"{html.escape(v)}<br><small>{html.escape(reason)}</small>" if v == NOT_TESTABLE and reason else v
        )

    shown = pd.DataFrame({
        "claim": [f"{k}<br><small>{f}</small>" for k, f in zip(h["hypothesis"], h["family"], strict=True)],
        "verdict": [judged(v, r) for v, r in zip(h["verdict"], h["reason"], strict=True)],
        "contrast": h.apply(contrast, axis=1),
        "difference [95% CI]": _difference(h, "estimate", lambda r: r["metric"]),
        "p (Holm)": h["p_holm"].map(display.format_p),
        "margin / detectable": [f"{_number(a, _DIGITS[m])}<br><small>{_number(d, _DIGITS[m])}</small>"
                                for a, d, m in zip(h["margin"], h["mdd"], h["metric"], strict=True)],
        "cases x runs": [design(n, s, m) for n, s, m in zip(h["n_cases"], h["n_seeds"], h["metric"], strict=True)],
        "seed's": [_number(v, _DIGITS[m], True) for v, m in zip(h["seed_estimate"], h["metric"], strict=True)],
    })  # fmt: skip
    n_primary = int((h["family"] == "primary").sum())
    note = ("Claims (primary or secondary family under each): a, each hybrid beats its base; b, Tversky+HDT has the "
            "best Dice and NSD; c, the hybrids converge later (epoch of the best checkpoint, paired by run); d, "
            "lesions under 1% of the brain are the hardest (the slope of Dice per burden stratum step, <1% to 1-5% "
            "to >5%, claimed positive; each stratum's mean Dice and case count under it). Difference: first minus "
            "second; Dice and NSD over cases with a lesion, MASD over the cases it is defined for in every run of "
            "both; 95% CI: pigeonhole bootstrap (cases and runs resampled independently). p (Holm): two-sided t "
            "test of the mean difference, its SE from the contrast's variance components (SDs of case, run and "
            "case x run, with the Satterthwaite df: columns sd_case, sd_run, sd_case_run and df of the CSV) and Holm-adjusted within its family (primary: the "
            f"{n_primary} Dice contrasts of claim a; secondary: every other row); for d the t test of the linear "
            "trend. Margin: equivalence margin of the two one-sided t tests. Detectable: the difference this design "
            "detects with 80% power at its family's strictest Holm level, from the row's SE and df. Verdict: "
            "supported or contradicted (Holm p < 0.05, by the sign), equivalent (inside the margin), inconclusive, "
            "or not testable here (the design cannot reach a verdict: the reason is under it; such rows are "
            "outside the Holm families). Seed's: the seed's own difference, from its Table 1 (4 validation cases, "
            f"its own grid and units). {_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note,
                         html_columns=["claim", "verdict", "contrast", "difference [95% CI]", "margin / detectable"],
                         data=h, csv_name=f"hypotheses-{split}{'-' + claims if claims else ''}")  # fmt: skip


def seed_table(results: StudyResults, split: str = "test"):
    """The seed's Table 1 beside this study's means on ``split`` (same losses, different cases, grid and units)."""
    seed = seed_study.seed_table()
    ours = results.table("table1", split).set_index("method")
    epochs = _median_best_epochs(results)
    rows = []
    for _, r in seed.iterrows():
        m = r["method"]
        here = ours.loc[m] if m in ours.index else None
        rows.append({
            "loss": method_label(m), "seed: Dice": f"{r['dice']:.4f}",
            "seed: MSD (voxels)": "Inf" if not math.isfinite(r["msd_voxels"]) else f"{r['msd_voxels']:.4f}",
            "seed: NSD": f"{r['nsd']:.4f}", "seed: best epoch": str(int(r["best_epoch"])),
            "here: Dice": "not run" if here is None else display.format_ci(here["dice_mean"], here["dice_ci_low"],
                                                                          here["dice_ci_high"], 3, html_break=True),
            "here: MASD (mm)": "-" if here is None else _number(here["masd_mm_mean"], 2),
            "here: NSD": "-" if here is None else _number(here["nsd_mean"], 3),
            "here: median best epoch": epochs.get(m, "-"),
        })  # fmt: skip
    note = (f"Left: the seed study's Table 1 {{{seed_study.CITATION}}}, as published: 4 official validation cases "
            "(which also stopped its training), scores on its resampled 32 x 192 x 192 grid, MSD in voxels, an "
            f"Inf where an empty prediction was averaged. Right: this study on its {split_label(split)} "
            f"({display.plural(results.n_cases(split), 'case')}), Dice [95% CI] and NSD over cases with a lesion, "
            "MASD in mm on each scan's native grid. The two sides differ in cases, grid, units and data "
            f"({'synthetic here' if results.synthetic else 'BONBID-HIE'}): compare orderings, not numbers.")  # fmt: skip
    return display.table(
        pd.DataFrame(rows),
        note=note.replace("{usman2025hie}", "(Usman et al. 2025)"),
        html_columns=["here: Dice"],
    )


def _median_best_epochs(results: StudyResults) -> dict[str, str]:
    study = load_study(results.study_dir)
    try:
        losses = study.runs.losses
    except StudyFolderError:  # the run folders may have been moved away from their results
        return {}
    out = {}
    for loss in losses:
        epochs = study.best_epochs(loss)
        if epochs:
            out[loss] = f"{np.median(epochs):g} of {display.plural(len(epochs), 'run')}"
    return out


def comparisons_table(results: StudyResults, split: str = "test", metric: str = ""):
    """Each method against the Dice loss and the baseline: paired difference [CI], Holm p, detectable difference, verdict.

    ``metric``: only that metric's rows (``"dice"``, ``"masd_mm"``, ``"nsd"``), so that a long table reads
    as one per metric; empty: every row. Holm's family stays the whole table's (the note says so).
    """
    c = results.table("comparisons", split)
    n_tests = int(c["p_holm"].notna().sum()) if not c.empty else 0
    if metric:
        c = c[c["metric"] == metric].reset_index(drop=True)
    if c.empty:
        return display.markdown("No paired comparison: the study has no Dice-loss or baseline reference.")
    shown = pd.DataFrame({
        "comparison": [_contrast_label(m, r, results) for m, r in zip(c["method"], c["reference"], strict=True)],
        "metric": c["metric"].map(_METRIC_HEAD), "cases": c["n_pairs"],
        "difference [95% CI]": _difference(c, "mean_difference", lambda r: r["metric"]),
        "p (Holm)": c["p_holm"].map(display.format_p),
        "equivalence p (Holm)": c["p_equivalence_holm"].map(display.format_p),
        "detectable": [_number(v, _DIGITS[m]) for v, m in zip(c["mdd"], c["metric"], strict=True)],
        "verdict": c["verdict"], "better mean": c["favours"].map(lambda m: method_label(m, results) if m else "-"),
        "Wilcoxon p": c["p_wilcoxon"].map(display.format_p),
    })  # fmt: skip
    note = (f"Exploratory family: difference = method minus reference, paired over the cases both scored "
            "(Dice, NSD: cases with a lesion; MASD: cases defined in every run of both); 95% CI from the pigeonhole "
            "bootstrap (cases and runs resampled independently); p: two-sided t test of the mean difference with "
            "its SE from the variance components of case, run and case × run (Satterthwaite df), Holm-adjusted over "
            f"the {n_tests} testable rows of the comparisons, every metric together; equivalence p: two one-sided t tests against ±margin (Dice "
            f"and NSD {results.config.design.margins['dice']:g}, MASD "
            f"{results.config.design.margins['masd_mm']:g} mm), Holm-adjusted; detectable: the difference "
            "detectable with 80% power at the table's strictest Holm level. Verdict: different, equivalent, "
            f"inconclusive (neither: the design cannot tell) or {NOT_TESTABLE} (fewer than 5 cases, or no test). "
            "Wilcoxon p: the signed-rank test of the run-averaged case differences, unadjusted, a sensitivity "
            "check only. For MASD lower is better.")  # fmt: skip
    return display.table(shown, precision=3, note=note, html_columns=["difference [95% CI]"], data=c,
                         csv_name=f"comparisons-{split}{'-' + metric if metric else ''}")  # fmt: skip


def strata_table(results: StudyResults, split: str = "test"):
    """Per method and stratum: n and mean [95% CI] of each metric (a CI where n >= 5), false positives on empty labels."""
    s = results.table("strata", split)
    shown = pd.DataFrame(
        {"method": _labels(s["method"], results), "stratum": s["stratum"], "cases": s["n_cases"]}
    )
    for metric in ("dice", "masd_mm", "nsd"):
        shown[_METRIC_HEAD[metric]] = _ci_column(s, metric)
    shown["false positives"] = [
        "-" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{display.plural(int(c), 'case')}, {v:.2f} mL"
        for c, v in zip(s["fp_cases"].fillna(0), s["fp_volume_ml_mean"], strict=True)]  # fmt: skip
    shown["note"] = s["note"]
    note = ("Lesion burden = lesion volume / brain volume, as the challenge stratifies; mean [95% CI] (pigeonhole "
            "bootstrap over cases and runs) where a stratum "
            f"has at least {MIN_STRATUM_CI} cases; empty label: cases without a lesion, scored by false positives "
            f"(cases with any predicted voxel, mean predicted volume). {_provenance(results)}.")  # fmt: skip
    return display.table(
        shown, precision=3, note=note, html_columns=[_METRIC_HEAD[m] for m in ("dice", "masd_mm", "nsd")]
    )


def per_case_table(results: StudyResults, split: str = "test", metric: str = "dice"):
    """One row per case: stratum, burden and ``metric`` of every method (averaged over runs)."""
    from hie_core.report.analysis.tables import per_case_wide

    p = results.table("per_case", split)
    methods = [*results.methods, "baseline", "ceiling"]
    wide = per_case_wide(p, split, metric, methods)
    wide = wide.rename(columns={"case_id": "case", "burden_percent": "lesion burden (%)",
                                **{m: method_label(m, results) for m in methods}})  # fmt: skip
    note = (f"{_METRIC_HEAD[metric]} per case of the {split_label(split)}, averaged over runs (baseline: ZADC < -2; "
            "ceiling: the label resampled through the training grid); all metrics per case and run-level counts are "
            f"in results/per_case_{split}.csv.")  # fmt: skip
    return display.table(wide, precision=3, note=note)
