"""The Results page's figures of runs and cases: every run's training curves, and one case
(Figure 6, its interactive viewer, and the same case in the live viewer).

Unlike the tables of :mod:`hie_core.report.pages.results_page`, these read the run folders (their
``history.csv`` and saved masks) through :func:`hie_core.report.analysis.study_model.load_study`.
"""

from __future__ import annotations

from hie_core.report.analysis.results import StudyResults
from hie_core.report.analysis.runs import load_case
from hie_core.report.analysis.study_model import load_study
from hie_core.report.pages.results_page import method_label
from hie_core.report.viewers import display
from hie_core.report.viewers.charts import training_curves_figure

__all__ = ["case_arrays", "curves_figure", "figure6", "live_case_viewer"]


def curves_figure(results: StudyResults, div_id: str = "all-curves") -> None:
    """Training curves of every trained method and seed (read from the run folders' ``history.csv``)."""
    study = load_study(results.study_dir)
    histories = {method_label(m, results): study.histories(m) for m in study.runs.losses}
    display.show(training_curves_figure(histories), div_id)


def _pick_case(results: StudyResults, split: str) -> str:
    p = results.table("per_case", split)
    p = p[p["method"].isin(results.losses) & (p["n_ref"] > 0)]
    mean = p.groupby("case_id")["dice"].mean().sort_values(kind="stable")
    if mean.empty:
        raise ValueError(f"no {split} case with a lesion to show")
    return str(mean.index[(len(mean) - 1) // 2])


def case_arrays(results: StudyResults, case_id: str | None = None, split: str = "test") -> dict:
    """One case's maps, label and each method's mask (first seed of each method, outside predictions, baseline, ceiling).

    Args:
        results: The study's results.
        case_id: The case; default the case with the median mean Dice over the losses.
        split: Its split.
    """
    from hie_core.data import discover_cases

    case_id = case_id or _pick_case(results, split)
    cases = {c.case_id: c for c in discover_cases(results.config.data_dir)}
    case = cases[case_id]
    arrays = load_case(case)
    predictions = load_study(results.study_dir).predictions(case)
    return {**arrays, "predictions": predictions}


def figure6(
    results: StudyResults, case_id: str | None = None, split: str = "test", div_id: str = "figure6"
) -> None:
    """One case, interactive: ADC/ZADC, each method's mask against the reference, one method at a time.

    :func:`hie_core.report.viewers.slices.case_viewer`: a menu picks the method (the losses, then the
    baseline and the ceiling) whose true positives, misses and false positives are shown.
    """
    from hie_core.report.viewers.slices import case_viewer

    v = case_arrays(results, case_id, split)
    predictions = {method_label(m, results): mask for m, mask in v["predictions"].items()}
    fig = case_viewer(v["adc"], v["zadc"], v["label"], v["geometry"].spacing_mm, predictions,
                      title=f"{v['case_id']} ({v['split'] or split})")  # fmt: skip
    display.show(fig, div_id)


def live_case_viewer(results: StudyResults, case_id: str | None = None, split: str = "test"):
    """The case of :func:`figure6` in the live ipywidgets viewer (needs a running kernel), same coding."""
    from hie_core.report.viewers.live import live_viewer

    v = case_arrays(results, case_id, split)
    predictions = {method_label(m, results): mask for m, mask in v["predictions"].items()}
    return live_viewer({"ADC": v["adc"], "ZADC": v["zadc"]}, predictions, v["geometry"].spacing_mm,
                       reference=v["label"])  # fmt: skip
