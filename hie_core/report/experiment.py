"""What the training notebook shows: one call per section, each a table or a figure.

Every table says where its numbers come from (synthetic or BONBID-HIE data, which split,
which device), so an executed notebook cannot be mistaken for a result on patients.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from hie_core.losses import loss_label
from hie_core.metrics import METRIC_LABELS, METRIC_NAMES
from hie_core.model import ARCH_LABELS
from hie_core.report import display
from hie_core.report.sources import source_line, source_of_run
from hie_core.training.experiment import RUN_FILES, RunResult

__all__ = [
    "source_label",
    "run_overview",
    "training_curves",
    "split_summary",
    "per_case_table",
    "example_overlay",
    "check_run_folder",
]


def source_label(config_json: dict) -> str:
    """The run's data source (synthetic when its data folder carries the generator's manifest) and device."""
    return source_line(source_of_run(config_json), device=config_json.get("device_name", "unknown device"))


def run_overview(result: RunResult):
    """One-row table (no index): loss, preset, data source, device, epochs, best epoch, test Dice."""
    cfg = result.config
    test = result.summary.get("splits", {}).get("test", {})
    row = {
        "loss": loss_label(cfg["config"]),
        "network": ARCH_LABELS.get(cfg["config"].get("arch", "unet3d"), cfg["config"].get("arch")),
        "preset": cfg["config"]["preset"],
        "data": source_of_run(cfg).short,
        "device": cfg.get("device_name"),
        "epochs run": result.summary.get("epochs_run"),
        "best epoch": result.summary.get("best_epoch"),
        "train s (this call)": round(result.summary.get("train_seconds_this_call", float("nan")), 1),
        "test Dice": test.get("dice", {}).get("mean"),
    }
    loss = cfg["config"]["loss"]
    for metric in METRIC_NAMES:
        value = test.get(metric, {}).get("mean")
        if value is not None:
            display.glue(f"{loss}_test_{metric}", float(value))
    return display.table(pd.DataFrame([row]), note=f"Source: {source_label(cfg)}.")


def training_curves(result: RunResult) -> None:
    """The loss and selection-Dice curves of this run (interactive)."""
    from hie_core.report.charts import training_curves_figure

    loss = result.config["config"]["loss"]
    label = loss_label(result.config["config"])
    fig = training_curves_figure({label: {int(result.config["config"].get("seed", 0)): result.history}})
    fig.update_layout(
        title=dict(text=f"{label}, {source_of_run(result.config).short}", x=0.5, xanchor="center")
    )
    display.show(fig, div_id=f"curves-{re.sub(r'[^A-Za-z0-9_-]', '-', loss)}")


def _fmt(stats: dict, digits: int = 3) -> str:
    if not stats or stats.get("n", 0) == 0:
        return "n/a"
    return display.format_ci(stats.get("mean"), stats.get("ci_low"), stats.get("ci_high"), digits)


def split_summary(result: RunResult):
    """Mean [95% bootstrap CI] of Dice, MASD (mm) and NSD per reported split (a table, no index)."""
    rows = []
    for split, stats in result.summary.get("splits", {}).items():
        rows.append({
            "split": split,
            "cases": stats["dice"]["n"],
            METRIC_LABELS["dice"]: _fmt(stats["dice"]),
            METRIC_LABELS["masd_mm"]: _fmt(stats["masd_mm"], 2),
            "MASD skipped (one mask empty)": stats["masd_mm"]["n_skipped"],
            METRIC_LABELS["nsd"]: _fmt(stats["nsd"]),
        })  # fmt: skip
    note = f"Mean [95% bootstrap CI] over cases, on each case's native grid. Source: {source_label(result.config)}."
    return display.table(pd.DataFrame(rows), note=note)


def per_case_table(result: RunResult):
    """The per-case metrics, one row per case (the whole table, no index)."""
    heads = {"split": "split", "case_id": "case", "stratum": "lesion-burden stratum",
             "burden_percent": "lesion burden (%)", **METRIC_LABELS,
             "n_pred": "predicted voxels", "n_ref": "reference voxels"}  # fmt: skip
    table = result.metrics[[c for c in heads if c in result.metrics]].rename(columns=heads)
    return display.table(table, precision=3, note="Lesion burden: lesion volume / brain volume. MASD is undefined "
                         "(-) where exactly one of prediction and reference is empty.")  # fmt: skip


def _median_case(metrics: pd.DataFrame) -> pd.Series | None:
    candidates = metrics[(metrics["split"] == "test") & (metrics["n_ref"] > 0)]
    if candidates.empty:
        candidates = metrics[metrics["n_ref"] > 0]
    if candidates.empty:
        return None
    ordered = candidates.sort_values("dice", kind="stable")
    return ordered.iloc[len(ordered) // 2]


def example_overlay(result: RunResult):
    """The prediction against the reference over the native ADC, for the test case with the median Dice.

    True positives, misses and false positives in the book's one agreement coding
    (:func:`hie_core.report.stills.agreement_montage`), cropped to the brain.
    """
    from hie_core.data import discover_cases
    from hie_core.report.runs import load_case, load_prediction
    from hie_core.report.stills import agreement_montage

    row = _median_case(result.metrics)
    if row is None:
        print("No case with a lesion to show.")
        return None
    cases = {c.case_id: c for c in discover_cases(result.config["data_dir_resolved"])}
    arrays = load_case(cases[row["case_id"]])
    prediction = load_prediction(result.run_dir, cases[row["case_id"]])
    title = f"{arrays['case_id']} ({arrays['split']}), Dice {row['dice']:.3f}, {source_of_run(result.config).short}"
    return agreement_montage(arrays["adc"], arrays["label"], prediction, arrays["geometry"].spacing_mm, n=6,
                             title=title)  # fmt: skip


def check_run_folder(result: RunResult) -> None:
    """Raise unless the run folder holds every promised file and one prediction per case."""
    run_dir = Path(result.run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    predictions = sorted((run_dir / "predictions").rglob("*_lesion.mha"))
    if missing:
        raise FileNotFoundError(f"{run_dir}: missing {', '.join(missing)}")
    if len(predictions) != len(result.metrics):
        raise RuntimeError(
            f"{run_dir}: {len(predictions)} predictions for {len(result.metrics)} evaluated cases"
        )
    if not result.history["selection_dice"].between(0, 1).all():
        raise RuntimeError(f"{run_dir / 'history.csv'}: selection Dice outside [0, 1]")
    print(f"run folder complete: {len(RUN_FILES)} files, {len(predictions)} native-grid predictions")
