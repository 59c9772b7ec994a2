"""What the training notebook shows: one call per section, each a table or a figure.

Every table says where its numbers come from (synthetic or BONBID-HIE data, which split,
which device), so an executed notebook cannot be mistaken for a result on patients.

The page's numbers are the study's endpoint, computed by the functions that make Table 1
(:mod:`hie_core.report.analysis.tables`), so a loss has one number everywhere: Dice and NSD over the
cases **with a lesion**, MASD over the cases where it is defined (with their count), the
cases with an empty reference label beside them as their own endpoint (false positives),
per seed and, when the study folder holds the loss's other seeds, their mean
(:func:`seed_endpoints`). The all-case summary of ``summary.json`` (the empty case scored 0 or
1) is not shown.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from hie_core.losses import loss_label
from hie_core.metrics import METRIC_LABELS
from hie_core.model import ARCH_LABELS
from hie_core.report.analysis import tables
from hie_core.report.analysis.study_records import RunConfig
from hie_core.report.pages.sources import source_line, source_of_run
from hie_core.report.viewers import display
from hie_core.run_folder import RUN_FILES, RunResult, parse_run_folder_name, read_config

__all__ = [
    "source_label",
    "ENDPOINT_COLUMNS",
    "run_overview",
    "study_run_scores",
    "seed_endpoints",
    "endpoint_table",
    "training_curves",
    "per_case_table",
    "example_overlay",
    "check_run_folder",
]


def source_label(config_json: dict) -> str:
    """The run's data source (synthetic when its data folder carries the generator's manifest) and device."""
    return source_line(source_of_run(config_json), device=config_json.get("device_name", "unknown device"))


#: Columns of :func:`seed_endpoints` (Table 1's, by seed).
ENDPOINT_COLUMNS = ("split", "seed", "n_cases", "dice_mean", "dice_ci_low", "dice_ci_high", "masd_mm_mean",
                    "masd_mm_ci_low", "masd_mm_ci_high", "masd_cases", "nsd_mean", "nsd_ci_low", "nsd_ci_high",
                    "empty_cases", "fp_cases", "fp_volume_ml_mean")  # fmt: skip
#: Settings that may differ between the seeds of one method (they do not change what is compared).
_PER_RUN = ("seed", "fold", "output_dir", "device", "num_workers")
#: Reported splits, in the order the page shows them.
_SPLITS = ("test", "cv", "val")


def _method(result: RunResult) -> str:
    """The method id: the run folder's parent (``runs/<study>/<method>/seed<k>``)."""
    return Path(result.run_dir).parent.name


def _same_design(config: dict, other: dict) -> bool:
    """Whether two runs' configurations differ only in :data:`_PER_RUN` settings."""
    a, b = config.get("config", {}), other.get("config", {})
    return {k: v for k, v in a.items() if k not in _PER_RUN} == {
        k: v for k, v in b.items() if k not in _PER_RUN
    }


def _sibling_runs(result: RunResult) -> list[tuple[int, int | None, pd.DataFrame]]:
    """``(seed, fold, metrics)`` of every finished run of this method in the study folder, this one included.

    A sibling counts when its folder is ``seed<k>`` or ``seed<k>-fold<f>``, holds ``summary.json``,
    ``config.json`` and ``metrics.csv``, and its configuration differs from this run's only in
    seed, fold, folder and device; this run itself always counts.
    """
    run_dir = Path(result.run_dir).resolve()
    cfg = result.config["config"]
    found = [
        (int(cfg.get("seed", 0)), cfg.get("fold") if int(cfg.get("folds") or 0) > 1 else None, result.metrics)
    ]
    parent = run_dir.parent
    for folder in sorted(parent.iterdir()) if parent.is_dir() else []:
        seed_fold = parse_run_folder_name(folder.name)
        if seed_fold is None or folder.resolve() == run_dir or not (folder / "summary.json").is_file():
            continue
        try:
            config = read_config(folder)  # a RunFolderError is an OSError: an unreadable sibling is skipped
            metrics = pd.read_csv(folder / "metrics.csv")
        except (OSError, ValueError):
            continue
        if config is not None and _same_design(result.config, config):
            found.append((*seed_fold, metrics))
    return sorted(found, key=lambda item: (item[0], -1 if item[1] is None else item[1]))


def study_run_scores(result: RunResult) -> pd.DataFrame:
    """:func:`hie_core.report.analysis.tables.run_scores` rows of this method: every seed found in its study folder.

    Returns:
        One row per split, case and seed (a case scored by several fold models averaged), with
        ``method`` the run folder's parent's name.
    """
    method = _method(result)
    frames = [m.assign(method=method, seed=seed, fold=fold) for seed, fold, m in _sibling_runs(result)]
    return tables.run_scores(pd.concat(frames, ignore_index=True))


def _endpoint_row(runs: pd.DataFrame, split: str, method: str, seed: str) -> dict | None:
    """Table 1's row of ``method`` on ``split`` from ``runs`` (one seed, or all), as :data:`ENDPOINT_COLUMNS`."""
    table = tables.table1(tables.seed_average(runs), runs, split, [method])
    if table.empty:
        return None
    row = table.iloc[0]
    return {"split": split, "seed": seed, **{k: row[k] for k in ENDPOINT_COLUMNS[2:]}}


def seed_endpoints(result: RunResult) -> pd.DataFrame:
    """The Table 1 endpoint of this method per reported split: each seed found, then their mean.

    Every number is :func:`hie_core.report.analysis.tables.table1`'s for the same run folders, so the
    page's Dice of a seed is Table 1's Dice of that seed, and the mean row is Table 1's row
    when the study folder holds every seed the study ran.

    Returns:
        :data:`ENDPOINT_COLUMNS`; ``seed`` is ``"0"``, ``"1"``, ... and, with two seeds or more,
        ``"mean of N seeds"``. Splits in the order test, cv, val.
    """
    runs = study_run_scores(result)
    method = _method(result)
    seeds = sorted(int(s) for s in runs["seed"].unique())
    rows = []
    for split in [s for s in _SPLITS if (runs["split"] == s).any()]:
        for seed in seeds:
            rows.append(_endpoint_row(runs[runs["seed"] == seed], split, method, str(seed)))
        if len(seeds) > 1:
            rows.append(_endpoint_row(runs, split, method, f"mean of {len(seeds)} seeds"))
    return pd.DataFrame([r for r in rows if r is not None], columns=list(ENDPOINT_COLUMNS))


def _run(result: RunResult) -> RunConfig:
    """The run's ``config.json`` typed (:class:`hie_core.report.analysis.study_records.RunConfig`)."""
    return RunConfig.of_run(result.run_dir, result.config)


def _this_seed(result: RunResult, split: str = "test") -> pd.Series | None:
    """This run's row of :func:`seed_endpoints` on ``split`` (None without that split)."""
    table = seed_endpoints(result)
    rows = table[(table["split"] == split) & (table["seed"] == str(_run(result).seed))]
    return rows.iloc[0] if len(rows) else None


def run_overview(result: RunResult):
    """One-row table (no index): loss, preset, data source, device, epochs, best epoch, and this seed's
    test Dice over the cases with a lesion (Table 1's endpoint)."""
    cfg, run = result.config, _run(result)
    this = _this_seed(result)
    row = {
        "loss": loss_label(run.settings),
        "network": ARCH_LABELS.get(run.arch, run.arch),
        "preset": run.preset,
        "seed": run.seed,
        "data": source_of_run(cfg).short,
        "device": run.device,
        "epochs run": result.summary.get("epochs_run"),
        "best epoch": result.summary.get("best_epoch"),
        "train s (this call)": round(result.summary.get("train_seconds_this_call", float("nan")), 1),
        "test Dice (cases with a lesion)": None if this is None else round(float(this["dice_mean"]), 3),
    }
    return display.table(pd.DataFrame([row]), note=f"Source: {source_label(cfg)}.")


def training_curves(result: RunResult) -> None:
    """The loss and selection-Dice curves of this run (interactive)."""
    from hie_core.report.viewers.charts import training_curves_figure

    run = _run(result)
    loss, label = run.loss, loss_label(run.settings)
    fig = training_curves_figure({label: {run.seed: result.history}})
    fig.update_layout(
        title=dict(text=f"{label}, {source_of_run(result.config).short}", x=0.5, xanchor="center")
    )
    display.show(fig, div_id=f"curves-{re.sub(r'[^A-Za-z0-9_-]', '-', loss)}")


def _count(value) -> str:
    return "-" if pd.isna(value) else str(int(value))


def endpoint_table(result: RunResult):
    """Table 1's endpoint per split and seed (a table, no index): Dice, MASD (mm, with its count) and NSD
    over the cases with a lesion, mean [95% CI]; the empty-label cases beside them."""
    table = seed_endpoints(result)
    rows = [{
        "split": r["split"], "seed": r["seed"], "cases with a lesion": _count(r["n_cases"]),
        METRIC_LABELS["dice"]: _fmt_row(r, "dice", 3),
        METRIC_LABELS["masd_mm"]: _fmt_row(r, "masd_mm", 2),
        "cases with a MASD": f"{_count(r['masd_cases'])} of {_count(r['n_cases'])}",
        METRIC_LABELS["nsd"]: _fmt_row(r, "nsd", 3),
        "empty-label cases with a false positive": (f"{_count(r['fp_cases'])} of {_count(r['empty_cases'])}"
                                                    if r["empty_cases"] else "none in this split"),
    } for _, r in table.iterrows()]  # fmt: skip
    seeds = sorted({s for s in table["seed"] if s.isdigit()}, key=int)
    found = (f"seeds {', '.join(seeds)} of this loss were finished in the study folder when this page ran"
             if len(seeds) > 1 else "only this seed of the loss was finished in the study folder when this page ran")  # fmt: skip
    note = ("Table 1's endpoint, computed by the same code: Dice and NSD over the cases with a lesion, MASD over "
            "those of them where it is defined (undefined where exactly one of prediction and reference is empty; "
            "for the mean of seeds, defined in every seed), mean [95% bootstrap CI] on each case's native grid. "
            "Cases with an empty reference label are their own endpoint: a predicted lesion there is a false "
            f"positive. {found[0].upper() + found[1:]}. Source: {source_label(result.config)}.")  # fmt: skip
    return display.table(pd.DataFrame(rows), note=note)


def _fmt_row(row: pd.Series, metric: str, digits: int) -> str:
    if pd.isna(row[f"{metric}_mean"]):
        return "n/a"
    return display.format_ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], digits)


def per_case_table(result: RunResult):
    """The per-case metrics of this run alone, one row per case (the whole table, no index); the
    book's page shows every seed instead (:func:`hie_core.report.pages.experiment_page.case_table`).
    Headers from the registry of display names (:data:`hie_core.methods.COLUMN_LABELS`)."""
    from hie_core.methods import COLUMN_LABELS

    columns = ("split", "case_id", "stratum", "burden_percent", "dice", "masd_mm", "nsd", "n_pred", "n_ref")
    heads = {c: COLUMN_LABELS[c] for c in columns}
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
    (:func:`hie_core.report.viewers.stills.agreement_montage`), cropped to the brain.
    """
    from hie_core.data import discover_cases
    from hie_core.report.analysis.runs import load_case, load_prediction
    from hie_core.report.viewers.stills import agreement_montage

    row = _median_case(result.metrics)
    if row is None:
        print("No case with a lesion to show.")
        return None
    cases = {c.case_id: c for c in discover_cases(_run(result).data_dir)}
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
