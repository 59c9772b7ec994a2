"""Study-level results: Table 1, lesion-burden strata, paired tests, curves, Figure 6.

Reads a study folder written by :mod:`hie_core.study`::

    runs/<study>/<loss>/{config.json, history.csv, metrics.csv, summary.json, predictions/}
    runs/<study>/baseline/{metrics.csv, summary.json, predictions/}

Everything is computed from those files; nothing here is typed in by hand. Each table
carries its source (synthetic or BONBID-HIE data, split, device).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hie_core.losses import LOSS_NAMES
from hie_core.metrics import BURDEN_STRATA, paired_wilcoxon, summarize
from hie_core.training.experiment import RunResult, load_run

__all__ = ["Study", "load_study", "table1", "strata_table", "wilcoxon_table", "per_case_wide", "curves_figure",
           "figure6", "best_loss", "BASELINE", "case_volumes", "live_case_viewer"]  # fmt: skip

BASELINE = "ZADC < -2 (baseline)"


@dataclass
class Study:
    """The finished runs of a study folder (missing or failed runs are listed, not hidden)."""

    study_dir: Path
    runs: dict[str, RunResult]
    baseline: pd.DataFrame | None
    missing: list[str]

    @property
    def first(self) -> RunResult:
        return next(iter(self.runs.values()))

    @property
    def synthetic(self) -> bool:
        return bool(self.first.config.get("synthetic"))

    @property
    def source(self) -> str:
        cfg = self.first.config
        data = (
            "SYNTHETIC BONBID-like data"
            if self.synthetic
            else f"BONBID-HIE data ({cfg['config']['data_dir']})"
        )
        return f"{data}; preset {cfg['config']['preset']}; {cfg.get('device_name')}"

    def metrics(self) -> pd.DataFrame:
        """All per-case rows, with a ``method`` column (each loss and the baseline)."""
        frames = [run.metrics.assign(method=loss) for loss, run in self.runs.items()]
        if self.baseline is not None:
            frames.append(self.baseline.assign(method=BASELINE))
        return pd.concat(frames, ignore_index=True)


def load_study(study_dir: str | Path) -> Study:
    """Load every finished run of a study folder, in the canonical loss order."""
    study_dir = Path(study_dir)
    runs, missing = {}, []
    for loss in LOSS_NAMES:
        if (study_dir / loss / "summary.json").is_file():
            runs[loss] = load_run(study_dir / loss)
        elif (study_dir / loss).exists():
            missing.append(loss)
    if not runs:
        raise FileNotFoundError(f"{study_dir}: no finished run folders (expected e.g. {study_dir / 'dice'})")
    baseline_csv = study_dir / "baseline" / "metrics.csv"
    baseline = pd.read_csv(baseline_csv) if baseline_csv.is_file() else None
    return Study(study_dir, runs, baseline, missing)


def _ci(stats: dict, digits: int) -> str:
    if stats["n"] == 0:
        return "n/a"
    return f"{stats['mean']:.{digits}f} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


def table1(study: Study, split: str = "test", n_boot: int = 2000) -> pd.DataFrame:
    """Dice, MASD (mm) and NSD @2 mm, mean [95% bootstrap CI], per loss and the baseline.

    Columns starting with ``_`` hold the numeric Dice mean and CI for ranking; drop them
    for display (``.filter(regex="^[^_]")``).
    """
    rows = []
    metrics = study.metrics()
    for method, frame in metrics[metrics["split"] == split].groupby("method", sort=False):
        s = summarize(frame[["dice", "masd_mm", "nsd"]], n_boot=n_boot)
        run = study.runs.get(method)
        rows.append({
            "method": method, "cases": s["dice"]["n"], "Dice": _ci(s["dice"], 3), "MASD mm": _ci(s["masd_mm"], 2),
            "MASD n/a": s["masd_mm"]["n_skipped"], "NSD @2mm": _ci(s["nsd"], 3),
            "epochs (best)": f"{run.summary['epochs_run']} ({run.summary['best_epoch']})" if run else "-",
            "_dice": s["dice"]["mean"], "_dice_low": s["dice"]["ci_low"], "_dice_high": s["dice"]["ci_high"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def best_loss(study: Study, split: str = "test") -> tuple[str, float]:
    """The loss with the highest mean Dice on ``split`` and that mean."""
    t = table1(study, split, n_boot=200)
    t = t[t["method"] != BASELINE]
    row = t.loc[t["_dice"].idxmax()]
    return str(row["method"]), float(row["_dice"])


def strata_table(study: Study, split: str = "test") -> pd.DataFrame:
    """Mean Dice per lesion-burden stratum (< 1 %, 1-5 %, > 5 %), with the case counts."""
    m = study.metrics()
    m = m[(m["split"] == split) & m["stratum"].notna()]
    pivot = m.pivot_table(index="method", columns="stratum", values="dice", aggfunc="mean", sort=False)
    pivot = pivot.reindex(columns=[s for s in BURDEN_STRATA if s in pivot.columns])
    counts = (
        m[m["method"] == m["method"].iloc[0]]["stratum"].value_counts() if len(m) else pd.Series(dtype=int)
    )
    pivot.columns = [f"{c} (n={int(counts.get(c, 0))})" for c in pivot.columns]
    return pivot.round(3).reset_index()


def wilcoxon_table(study: Study, split: str = "test", reference: str = "dice") -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests of each loss against ``reference``, per metric."""
    m = study.metrics()
    m = m[m["split"] == split]
    ref = m[m["method"] == reference].set_index("case_id")
    rows = []
    for method in [k for k in study.runs if k != reference] + (
        [BASELINE] if study.baseline is not None else []
    ):
        other = m[m["method"] == method].set_index("case_id").reindex(ref.index)
        for metric in ("dice", "masd_mm", "nsd"):
            w = paired_wilcoxon(other[metric].to_numpy(float), ref[metric].to_numpy(float))
            rows.append({"method": method, "vs": reference, "metric": metric, "n pairs": w["n"],
                         "median difference": w["median_difference"], "p": w["p_value"],
                         "note": w.get("reason") or ""})  # fmt: skip
    return pd.DataFrame(rows)


def per_case_wide(study: Study, split: str = "test", metric: str = "dice") -> pd.DataFrame:
    """One row per case, one column per method: ``metric`` on ``split``."""
    m = study.metrics()
    m = m[m["split"] == split]
    wide = m.pivot_table(
        index=["case_id", "stratum"], columns="method", values=metric, sort=False, dropna=False
    )
    return wide.round(3).reset_index()


def curves_figure(study: Study):
    """Training loss, selection loss and selection Dice of every loss on one plot."""
    from hie_core.report.figures import training_curves_figure

    fig = training_curves_figure({loss: run.history for loss, run in study.runs.items()})
    fig.update_layout(title=f"Training curves of all losses - {study.source}")
    return fig


def _pick_case(study: Study, split: str) -> str:
    m = study.metrics()
    m = m[(m["split"] == split) & (m["n_ref"] > 0) & (m["method"].isin(list(study.runs)))]
    mean_dice = m.groupby("case_id")["dice"].mean().sort_values(kind="stable")
    return str(mean_dice.index[len(mean_dice) // 2])


def case_volumes(study: Study, case_id: str | None = None, split: str = "test") -> dict:
    """One case's native ADC, ZADC, label and every method's prediction, for the viewers.

    Returns:
        dict with ``case_id``, ``split``, ``adc``, ``zadc`` (float32 (D, H, W)), ``label`` and
        ``predictions`` (name -> bool (D, H, W)), and ``spacing_mm``.
    """
    from hie_core.data import discover_cases
    from hie_core.io import read_image
    from hie_core.training.evaluate import prediction_path

    case_id = case_id or _pick_case(study, split)
    cases = {c.case_id: c for c in discover_cases(study.first.config["data_dir_resolved"])}
    case = cases[case_id]
    adc, geometry = read_image(case.adc, dtype=np.float32)
    preds = {loss: read_image(prediction_path(run.run_dir, case))[0] > 0 for loss, run in study.runs.items()}
    base = prediction_path(study.study_dir / "baseline", case)
    if base.is_file():
        preds[BASELINE] = read_image(base)[0] > 0
    return {"case_id": case_id, "split": case.split, "adc": adc, "zadc": read_image(case.zadc, dtype=np.float32)[0],
            "label": read_image(case.label)[0] > 0, "predictions": preds, "spacing_mm": geometry.spacing_mm}  # fmt: skip


def figure6(study: Study, case_id: str | None = None, split: str = "test"):
    """The seed's Figure 6, interactive: one case, ADC/ZADC, ground truth and every loss."""
    from hie_core.report.figures import case_viewer

    v = case_volumes(study, case_id, split)
    title = f"{v['case_id']} ({v['split']}) - {study.source}"
    return case_viewer(v["adc"], v["zadc"], v["label"], v["spacing_mm"], v["predictions"], title=title)


def live_case_viewer(study: Study, case_id: str | None = None, split: str = "test"):
    """The same case as :func:`figure6` in the live ipywidgets viewer (needs a kernel)."""
    from hie_core.report.viewers import live_viewer

    v = case_volumes(study, case_id, split)
    overlays = {"ground truth": v["label"], **v["predictions"]}
    return live_viewer({"ADC": v["adc"], "ZADC": v["zadc"]}, overlays, v["spacing_mm"])


def study_summary_json(study: Study) -> str:
    """A compact JSON of the headline numbers (for the book and the closing notes)."""
    t = table1(study, "test", n_boot=500)
    return json.dumps({r["method"]: r["Dice"] for _, r in t.iterrows()}, indent=1)
