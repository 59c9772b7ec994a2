"""The Intro and Results pages: one call per section, each one table, figure or paragraph.

Numbers come only from ``runs/<study>/results/`` (:func:`hie_core.report.results.read_results`);
the run folders are read only for what the result files do not hold: training curves and the
saved masks of Figure 6. Each function displays (or returns) one output that stands alone
when the book folds the code away: its note names the source, the counts and the units.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hie_core.report import display, prose
from hie_core.report.charts import table1_figure, training_curves_figure
from hie_core.report.results import StudyResults, read_results
from hie_core.report.runs import REFERENCES, find_runs, load_case, load_prediction
from hie_core.report.sources import DataSource, banner, source_line, study_dir_for

__all__ = [
    "abstract", "case_arrays", "comparisons_table", "curves_figure", "discussion", "figure6", "live_case_viewer",
    "method_label", "open_results", "per_case_table", "source_of", "strata_table", "study_banner", "table1", "table1_chart",
]  # fmt: skip

_METRIC_HEAD = {"dice": "Dice", "masd_mm": "MASD mm", "nsd": "NSD @2mm"}
#: How the tables name the two reference rows for a reader (the files keep the short keys).
METHOD_LABELS = {"baseline": "ZADC < -2 (baseline)", "ceiling": "label resampled (ceiling)"}
_DIGITS = {"dice": 3, "masd_mm": 2, "nsd": 3}


def open_results(study_dir: str = "", preset: str = "auto") -> StudyResults:
    """The result files of a study (``study_dir`` or ``runs/<preset>``); a clear error if absent."""
    return read_results(study_dir_for(study_dir, preset))


def source_of(results: StudyResults) -> DataSource:
    """The data source ``study.json`` records (synthetic from the folder's manifest)."""
    from pathlib import Path

    return DataSource(Path(results.info["data_dir"]), results.synthetic)


def _provenance(results: StudyResults) -> str:
    info = results.info
    return source_line(source_of(results), info.get("preset"), info.get("device"))


def study_banner(results: StudyResults) -> None:
    """The page-top note: data source, preset, seeds, devices, reported splits and their sizes."""
    info = results.info
    device = info.get("device")
    devices = ", ".join(device) if isinstance(device, list) else str(device)
    details = (f"Preset {info['preset']}; {len(info['seeds'])} seed(s) per loss; device: {devices}. Reported splits: "
               f"test ({results.n_cases('test')} cases) and official validation ({results.n_cases('val')} cases).")  # fmt: skip
    banner(source_of(results), details, info.get("unfinished"))


def abstract(results: StudyResults):
    """The answer paragraph (:func:`hie_core.report.prose.abstract`) as Markdown."""
    return display.markdown(prose.abstract(results))


def discussion(results: StudyResults):
    """Discussion and limitations (:func:`hie_core.report.prose.discussion`) as Markdown."""
    return display.markdown(prose.discussion(results))


def method_label(method: str) -> str:
    """A method's name in the book's tables: the loss key, or what a reference row is."""
    return METHOD_LABELS.get(method, method)


def _labels(methods: pd.Series) -> pd.Series:
    return methods.map(method_label)


def _ci_column(frame: pd.DataFrame, metric: str) -> pd.Series:
    cols = [f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high")]
    return frame[cols].apply(lambda r: display.format_ci(*r, digits=_DIGITS[metric], html_break=True), axis=1)


def table1(results: StudyResults, split: str = "test"):
    """Table 1: n, mean [95% CI] of each metric, ranks and the between-seed SD, one row per method."""
    t = results.table("table1", split)
    shown = pd.DataFrame({"method": _labels(t["method"]), "n": t["n_cases"], "runs": t["n_runs"]})
    for metric, head in _METRIC_HEAD.items():
        shown[head] = _ci_column(t, metric)
        if metric == "masd_mm":
            shown["n/a"] = t["masd_undefined"]
    shown["rank"] = t["rank_mean"].map(lambda v: "-" if not math.isfinite(v) else f"{v:.2f}")
    shown["seed SD"] = t["dice_seed_sd"]
    note = (f"n: {split} cases; runs: seeds; baseline: the organisers' ZADC < -2 threshold inside the brain; "
            "ceiling: the reference label sent through the training grid and back. Mean [95% bootstrap CI] over "
            "cases of per-case scores averaged over seeds; n/a: cases where MASD is undefined (one mask empty), skipped in its mean. rank: the challenge's "
            "mean of the Dice, MASD and NSD ranks (1 = best); the ceiling is not ranked, it bounds every method. "
            f"seed SD: SD of the mean Dice over seeds. {_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note, html_columns=list(_METRIC_HEAD.values()))


def table1_chart(results: StudyResults, split: str = "test", div_id: str = "table1-figure") -> None:
    """Table 1 as a figure: mean and 95% CI per loss and metric, baseline and ceiling as lines."""
    display.show(table1_figure(results.table("table1", split)), div_id)


def comparisons_table(results: StudyResults, split: str = "test"):
    """Each loss against the Dice loss and the baseline: paired difference [CI], Wilcoxon p, Holm p."""
    c = results.table("comparisons", split)
    if c.empty:
        return display.markdown("No paired comparison: the study has no Dice-loss or baseline reference.")
    diff = c.apply(lambda r: display.format_ci(r["mean_difference"], r["ci_low"], r["ci_high"], _DIGITS[r["metric"]],
                                               html_break=True), axis=1)  # fmt: skip
    shown = pd.DataFrame({
        "method": _labels(c["method"]), "vs": _labels(c["reference"]), "metric": c["metric"].map(_METRIC_HEAD),
        "pairs": c["n_pairs"],
        "difference [95% CI]": diff, "p": c["p_wilcoxon"].map(display.format_p),
        "p Holm": c["p_holm"].map(display.format_p), "holds": np.where(c["p_holm"] < prose.ALPHA, "yes", ""),
        "better mean": c["favours"], "no test because": c["reason"],
    })  # fmt: skip
    if (shown["no test because"] == "").all():
        shown = shown.drop(columns="no test because")
    n_tests = int(c["p_wilcoxon"].notna().sum())
    note = (f"Difference = method minus reference, paired over the {split} cases both have (pairs with an undefined "
            "MASD dropped); 95% paired bootstrap CI; p: two-sided Wilcoxon signed-rank; p Holm: adjusted over the "
            f"{n_tests} tests of this table; holds: p Holm < {prose.ALPHA}; better mean: the side whose mean is "
            "better, whether or not the difference holds. For MASD lower is better.")  # fmt: skip
    return display.table(shown, precision=3, note=note, scroll=True, html_columns=["difference [95% CI]"])


def strata_table(results: StudyResults, split: str = "test"):
    """Per method and lesion-burden stratum: n and mean [95% CI] of each metric (a CI where n >= 3)."""
    s = results.table("strata", split)
    shown = pd.DataFrame({"method": _labels(s["method"]), "stratum": s["stratum"], "cases": s["n_cases"]})
    for metric, head in _METRIC_HEAD.items():
        shown[head] = _ci_column(s, metric)
    shown["note"] = s["note"]
    note = ("Lesion burden = lesion volume / brain volume, as the challenge stratifies; mean [95% bootstrap CI] "
            f"where a stratum has at least 3 cases. {_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note, scroll=True, html_columns=list(_METRIC_HEAD.values()))


def per_case_table(results: StudyResults, split: str = "test", metric: str = "dice"):
    """One row per case: stratum, burden and ``metric`` of every method (seed-averaged)."""
    from hie_core.report.tables import per_case_wide

    p = results.table("per_case", split)
    methods = [*results.losses, "baseline", "ceiling"]
    wide = per_case_wide(p, split, metric, methods).rename(
        columns={"case_id": "case", "burden_percent": "burden %"}
    )
    note = (f"{_METRIC_HEAD[metric]} per {split} case, averaged over seeds (baseline: ZADC < -2; ceiling: the "
            "label resampled through the training grid); all metrics per case and seed-level "
            f"counts are in results/per_case_{split}.csv.")  # fmt: skip
    return display.table(wide, precision=3, note=note, scroll=True)


def curves_figure(results: StudyResults, div_id: str = "all-curves") -> None:
    """Training curves of every loss and seed (read from the run folders' ``history.csv``)."""
    runs = find_runs(results.study_dir)
    histories = {loss: [r.history() for r in runs.of(loss)] for loss in runs.losses}
    display.show(training_curves_figure(histories), div_id)


def _pick_case(results: StudyResults, split: str) -> str:
    p = results.table("per_case", split)
    p = p[p["method"].isin(results.losses) & (p["n_ref"] > 0)]
    mean = p.groupby("case_id")["dice"].mean().sort_values(kind="stable")
    if mean.empty:
        raise ValueError(f"no {split} case with a lesion to show")
    return str(mean.index[(len(mean) - 1) // 2])


def case_arrays(results: StudyResults, case_id: str | None = None, split: str = "test") -> dict:
    """One case's maps, label and each method's mask (first seed of each loss, baseline, ceiling).

    Args:
        results: The study's results.
        case_id: The case; default the case with the median mean Dice over the losses.
        split: Its split.
    """
    from hie_core.data import discover_cases

    case_id = case_id or _pick_case(results, split)
    cases = {c.case_id: c for c in discover_cases(results.info["data_dir"])}
    case = cases[case_id]
    arrays = load_case(case)
    runs = find_runs(results.study_dir)
    predictions = {}
    for method in [*runs.losses, *REFERENCES]:
        folders = runs.of(method)
        mask = load_prediction(folders[0].path, case) if folders else None
        if mask is not None:
            predictions[method] = mask
    return {**arrays, "predictions": predictions}


def figure6(
    results: StudyResults, case_id: str | None = None, split: str = "test", div_id: str = "figure6"
) -> None:
    """The seed's Figure 6, interactive: one case, ADC/ZADC, the reference and every method's mask."""
    from hie_core.report.slices import case_viewer

    v = case_arrays(results, case_id, split)
    fig = case_viewer(v["adc"], v["zadc"], v["label"], v["geometry"].spacing_mm, v["predictions"],
                      title=f"{v['case_id']} ({v['split']})")  # fmt: skip
    display.show(fig, div_id)


def live_case_viewer(results: StudyResults, case_id: str | None = None, split: str = "test"):
    """The case of :func:`figure6` in the live ipywidgets viewer (needs a running kernel)."""
    from hie_core.report.live import live_viewer

    v = case_arrays(results, case_id, split)
    overlays = {"ground truth": v["label"], **v["predictions"]}
    return live_viewer({"ADC": v["adc"], "ZADC": v["zadc"]}, overlays, v["geometry"].spacing_mm)
