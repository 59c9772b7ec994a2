"""One experiment end to end: data -> preprocessing -> training -> native-grid evaluation.

:func:`run_experiment` is what ``notebooks/train.ipynb`` calls. It writes into the run
folder (every file atomically):

- ``config.json``: every parameter, the data source (and whether synthetic), git commit,
  package versions and device name;
- ``history.csv``: per epoch train loss, selection loss and Dice, learning rate, seconds;
- ``model_best.pt`` (weights only) and ``checkpoint_last.pt`` (for resuming);
- ``predictions/<split>/<id>_lesion.mha`` on each case's native grid;
- ``metrics.csv`` (per case) and ``summary.json`` (per split, with bootstrap CIs).

A folder with a ``summary.json`` is a finished run: started again with the same
configuration it is loaded, not retrained; with another configuration it is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hie_core.data import Case, carve_validation, load_dataset
from hie_core.io import atomic_write_text
from hie_core.metrics import summarize
from hie_core.training.config import TrainConfig, provenance
from hie_core.training.evaluate import METRIC_COLUMNS, evaluate_baseline, evaluate_model
from hie_core.training.fit import BEST, TrainItem, fit, load_best_model, training_finished

__all__ = [
    "RunResult",
    "resolve_data_dir",
    "run_experiment",
    "load_run",
    "summarize_metrics",
    "project_root",
    "run_baseline",
    "notebook_config",
]

_COMPARED = ("loss", "data_dir", "synthetic_preset", "preset", "epochs", "patience", "batch_size", "lr",
             "weight_decay", "lr_decay", "l1", "grad_clip", "augment", "seed", "target_shape", "widths",
             "selection_fraction", "prior_probability")  # fmt: skip


@dataclass
class RunResult:
    """What a finished run left in its folder, loaded as tables."""

    run_dir: Path
    config: dict
    history: pd.DataFrame
    metrics: pd.DataFrame
    summary: dict


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "hie_core").is_dir():
            return folder
    return start


def resolve_data_dir(config: TrainConfig) -> Path:
    """The data folder: the user's, or the synthetic set (generated on first use)."""
    if config.data_dir:
        return Path(config.data_dir).expanduser().resolve()
    from hie_core.synthetic import ensure_synthetic_dataset

    return Path(ensure_synthetic_dataset(preset=config.synthetic_preset, seed=0))


def summarize_metrics(metrics: pd.DataFrame) -> dict:
    """Per split: mean/sd/median/95% bootstrap CI of dice, masd_mm, nsd (NaN-skipping)."""
    out = {}
    for split, rows in metrics.groupby("split", sort=False):
        if "dice" in rows and rows["dice"].notna().any():
            out[str(split)] = summarize(rows[["dice", "masd_mm", "nsd"]])
    return out


def _check_existing(run_dir: Path, config: TrainConfig) -> str:
    """'new', 'resume' or 'finished'; raises when the folder holds another run."""
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return "new"
    old = json.loads(cfg_path.read_text())["config"]
    new = config.to_dict()
    diffs = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in _COMPARED if old.get(k) != new[k]]
    finished = (run_dir / "summary.json").exists()
    if diffs:
        what = "a finished run" if finished else "an unfinished run"
        raise FileExistsError(
            f"{run_dir} holds {what} with another configuration ({'; '.join(diffs)}); "
            "choose another output_dir, or delete that folder to start over"
        )
    return "finished" if finished else "resume"


def _items(pairs) -> list[TrainItem]:
    return [
        TrainItem(case.case_id, pre.image, pre.label.astype("float32"), tuple(pre.geometry.spacing_mm))
        for case, pre in pairs
    ]


def _write_table(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def _write_json(obj, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def load_run(run_dir: str | Path) -> RunResult:
    """Load a finished run folder."""
    run_dir = Path(run_dir)
    for name in ("config.json", "history.csv", "metrics.csv", "summary.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name}: missing - is this a finished run folder?")
    return RunResult(
        run_dir,
        json.loads((run_dir / "config.json").read_text()),
        pd.read_csv(run_dir / "history.csv"),
        pd.read_csv(run_dir / "metrics.csv"),
        json.loads((run_dir / "summary.json").read_text()),
    )


def _preprocess(cases: list[Case], config: TrainConfig):
    from hie_core.preprocess import PreprocessCache

    cache = PreprocessCache()
    return [(case, cache.get(case, config.target_shape)) for case in cases]


def run_experiment(config: TrainConfig, stop_after_epochs: int | None = None) -> RunResult:
    """Train and evaluate one loss; resumable; see the module docstring for the files.

    Args:
        config: from :func:`hie_core.training.config.make_config`.
        stop_after_epochs: interrupt training after this many epochs (tests of resuming);
            the run is then left unfinished and ``None`` is returned.
    """
    run_dir = Path(config.output_dir)
    state = _check_existing(run_dir, config)
    if state == "finished":
        print(f"{run_dir}: finished run with the same configuration found - loading it, not retraining")
        return load_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = resolve_data_dir(config)
    cases, report = load_dataset(data_dir)
    info = {"config": config.to_dict(), "data_dir_resolved": str(data_dir), "synthetic": config.synthetic,
            "n_cases": {s: sum(c.split == s for c in cases) for s in ("train", "val", "test")},
            "empty_labels": len(report.notes), **provenance(config.device)}  # fmt: skip
    if state == "new":
        _write_json(info, run_dir / "config.json")
    train_cases = [c for c in cases if c.split in ("train", None)]
    fit_cases, selection_cases = carve_validation(train_cases, config.selection_fraction, config.seed)
    t0 = time.perf_counter()
    history = fit(config, _items(_preprocess(fit_cases, config)), _items(_preprocess(selection_cases, config)),
                  run_dir, stop_after_epochs=stop_after_epochs)  # fmt: skip
    history_df = pd.DataFrame(history)
    _write_table(history_df, run_dir / "history.csv")
    if not training_finished(history, config):
        return None  # interrupted on purpose (stop_after_epochs)
    train_seconds = time.perf_counter() - t0
    model, meta = load_best_model(run_dir / BEST, config.device)
    reported = [c for c in cases if c.split in ("val", "test")]
    rows = evaluate_model(model, _preprocess(reported, config), run_dir, config.device, config.amp)
    metrics = pd.DataFrame(rows).reindex(columns=list(METRIC_COLUMNS))
    _write_table(metrics, run_dir / "metrics.csv")
    summary = {"loss": config.loss, "preset": config.preset, "synthetic": config.synthetic,
               "best_epoch": meta["epoch"], "epochs_run": len(history), "train_seconds_this_call": train_seconds,
               "selection_cases": [c.case_id for c in selection_cases],
               "splits": summarize_metrics(metrics)}  # fmt: skip
    _write_json(summary, run_dir / "summary.json")
    return load_run(run_dir)


def run_baseline(data_dir: str | Path, out_dir: str | Path, threshold: float = -2.0) -> pd.DataFrame:
    """Evaluate ``ZADC < threshold`` on the reported splits; write metrics.csv and summary.json."""
    out_dir = Path(out_dir)
    cases, _ = load_dataset(data_dir)
    reported = [c for c in cases if c.split in ("val", "test")]
    metrics = pd.DataFrame(evaluate_baseline(reported, out_dir, threshold)).reindex(
        columns=list(METRIC_COLUMNS)
    )
    _write_table(metrics, out_dir / "metrics.csv")
    _write_json({"loss": "zadc_threshold", "threshold": threshold, "splits": summarize_metrics(metrics)},
                out_dir / "summary.json")  # fmt: skip
    return metrics


def notebook_config(
    loss: str,
    data_dir: str = "",
    output_dir: str = "",
    preset: str = "auto",
    device: str = "auto",
    **overrides,
) -> TrainConfig:
    """The configuration of ``notebooks/train.ipynb`` from its parameters cell.

    ``output_dir=""`` means ``runs/<preset>/<loss>`` under the project root (where the
    study of that preset looks, so a finished notebook run is reused by it); ``None``
    overrides mean "as the preset says". Prints the preset used, as the notebook shows it.
    """
    from hie_core.training.config import make_config

    config = make_config(preset=preset, device=device, loss=loss, data_dir=data_dir, **overrides)
    out = Path(output_dir) if output_dir else project_root() / "runs" / config.preset / loss
    config = dataclasses.replace(config, output_dir=str(out.resolve()))
    source = "synthetic BONBID-like dataset" if config.synthetic else f"BONBID-HIE folder {config.data_dir}"
    print(f"preset: {config.preset} (asked: {preset}); device: {config.device}; loss: {config.loss}")
    print(f"data: {source}; grid {config.target_shape}; widths {config.widths}")
    print(
        f"epochs <= {config.epochs}, patience {config.patience}, batch {config.batch_size}, augment {config.augment}"
    )
    return config
