"""What the training notebook shows: one call per section, each a table or a figure.

Every table says where its numbers come from (synthetic or BONBID-HIE data, which split,
which device), so an executed notebook cannot be mistaken for a result on patients.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hie_core.io import read_image
from hie_core.training.experiment import RunResult

__all__ = [
    "source_label",
    "run_overview",
    "training_curves",
    "split_summary",
    "per_case_table",
    "example_overlay",
    "check_run_folder",
    "REQUIRED_FILES",
]

REQUIRED_FILES = (
    "config.json",
    "history.csv",
    "model_best.pt",
    "checkpoint_last.pt",
    "metrics.csv",
    "summary.json",
)


def source_label(config_json: dict) -> str:
    """'synthetic BONBID-like data' or 'BONBID-HIE data (<folder>)', plus the device."""
    data = (
        "SYNTHETIC BONBID-like data"
        if config_json.get("synthetic")
        else f"BONBID-HIE data ({config_json['config']['data_dir']})"
    )
    return f"{data}; {config_json.get('device_name', 'unknown device')}"


def _display(obj) -> None:
    try:
        from IPython.display import display

        display(obj)
    except ImportError:  # pragma: no cover - plain Python
        print(obj)


def _glue(name: str, value, display: bool = False) -> None:
    """``myst_nb.glue`` when available (the book reads the numbers from there)."""
    try:
        from myst_nb import glue
    except ImportError:  # pragma: no cover - book extras not installed
        return
    glue(name, value, display=display)


def run_overview(result: RunResult) -> pd.DataFrame:
    """One-row table: loss, preset, data source, device, epochs, best epoch, scores."""
    cfg = result.config
    test = result.summary.get("splits", {}).get("test", {})
    row = {
        "loss": cfg["config"]["loss"],
        "preset": cfg["config"]["preset"],
        "data": "synthetic" if cfg.get("synthetic") else "BONBID-HIE",
        "device": cfg.get("device_name"),
        "epochs run": result.summary.get("epochs_run"),
        "best epoch": result.summary.get("best_epoch"),
        "train s (this call)": round(result.summary.get("train_seconds_this_call", float("nan")), 1),
        "test Dice": test.get("dice", {}).get("mean"),
    }
    loss = row["loss"]
    for metric in ("dice", "masd_mm", "nsd"):
        value = test.get(metric, {}).get("mean")
        if value is not None:
            _glue(f"{loss}_test_{metric}", float(value))
    table = pd.DataFrame([row])
    print(f"Source: {source_label(cfg)}")
    return table


def training_curves(result: RunResult) -> None:
    """The loss and selection-Dice curves of this run (interactive)."""
    from hie_core.report.figures import training_curves_figure
    from hie_core.report.viewers import show

    loss = result.config["config"]["loss"]
    fig = training_curves_figure({loss: result.history})
    fig.update_layout(title=f"{loss}: training curves ({source_label(result.config)})")
    show(fig, div_id=f"curves-{loss}", plotly_mime=False)


def _fmt(stats: dict, digits: int = 3) -> str:
    if not stats or stats.get("n", 0) == 0 or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


def split_summary(result: RunResult) -> pd.DataFrame:
    """Mean [95% bootstrap CI] of Dice, MASD (mm) and NSD per reported split."""
    rows = []
    for split, stats in result.summary.get("splits", {}).items():
        rows.append({
            "split": split,
            "cases": stats["dice"]["n"],
            "Dice": _fmt(stats["dice"]),
            "MASD mm": _fmt(stats["masd_mm"], 2),
            "MASD skipped (one mask empty)": stats["masd_mm"]["n_skipped"],
            "NSD @2mm": _fmt(stats["nsd"]),
        })  # fmt: skip
    print(f"Mean [95% bootstrap CI] on each case's native grid. Source: {source_label(result.config)}")
    return pd.DataFrame(rows)


def per_case_table(result: RunResult) -> pd.DataFrame:
    """The per-case metrics, rounded for reading."""
    cols = ["split", "case_id", "stratum", "burden_percent", "dice", "masd_mm", "nsd", "n_pred", "n_ref"]
    table = result.metrics[[c for c in cols if c in result.metrics]].copy()
    return table.round({"burden_percent": 2, "dice": 3, "masd_mm": 2, "nsd": 3})


def _median_case(metrics: pd.DataFrame) -> pd.Series | None:
    candidates = metrics[(metrics["split"] == "test") & (metrics["n_ref"] > 0)]
    if candidates.empty:
        candidates = metrics[metrics["n_ref"] > 0]
    if candidates.empty:
        return None
    ordered = candidates.sort_values("dice", kind="stable")
    return ordered.iloc[len(ordered) // 2]


def example_overlay(result: RunResult):
    """Reference and prediction over the native ADC of the test case with the median Dice."""
    from hie_core.data import discover_cases
    from hie_core.report.viewers import overlay_montage
    from hie_core.training.evaluate import prediction_path

    row = _median_case(result.metrics)
    if row is None:
        print("No case with a lesion to show.")
        return None
    cases = {c.case_id: c for c in discover_cases(result.config["data_dir_resolved"])}
    case = cases[row["case_id"]]
    adc, geometry = read_image(case.adc)
    ref = read_image(case.label)[0] > 0
    pred = read_image(prediction_path(result.run_dir, case))[0] > 0
    title = f"{case.case_id} ({case.split}), Dice {row['dice']:.3f} - {source_label(result.config)}"
    return overlay_montage(adc.astype(np.float32), {"reference": ref, "prediction": pred}, geometry.spacing_mm,
                           n=6, colors={"reference": "#00c853", "prediction": "#e040fb"}, title=title)  # fmt: skip


def check_run_folder(result: RunResult) -> None:
    """Raise unless the run folder holds every promised file and one prediction per case."""
    run_dir = Path(result.run_dir)
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    predictions = sorted((run_dir / "predictions").rglob("*_lesion.mha"))
    if missing:
        raise FileNotFoundError(f"{run_dir}: missing {', '.join(missing)}")
    if len(predictions) != len(result.metrics):
        raise RuntimeError(
            f"{run_dir}: {len(predictions)} predictions for {len(result.metrics)} evaluated cases"
        )
    if not result.history["val_dice"].between(0, 1).all():
        raise RuntimeError(f"{run_dir / 'history.csv'}: selection Dice outside [0, 1]")
    print(f"run folder complete: {len(REQUIRED_FILES)} files, {len(predictions)} native-grid predictions")
