"""One experiment end to end: data -> preprocessing -> training -> native-grid evaluation.

:func:`run_experiment` is what ``notebooks/train.ipynb`` calls. It writes into the run
folder (every file atomically):

- ``config.json``: every parameter, the data source (and whether synthetic), the run's
  fingerprint (code, preprocessing version, configuration), the data fingerprint (every
  data file's SHA-256), git commit, package versions,
  device name and distance-transform back end;
- ``history.csv``: per epoch train loss, selection loss and Dice, learning rate, seconds;
- ``model_best.pt`` (weights only) and ``checkpoint_last.pt`` (for resuming);
- ``predictions/<split>/<id>_lesion.mha`` on each case's native grid;
- ``metrics.csv`` (per case) and ``summary.json`` (per split, with bootstrap CIs);
- ``failed.json`` instead, when training stopped on a non-finite loss or gradient or the loss
  broke its contract (:mod:`hie_core.training.failure`): the run is failed, not finished, and
  is trained again from scratch when started again.

Which cases train and which are reported follows the configuration's design
(:mod:`hie_core.training.design`): without folds, the training split trains (its selection set carved
out for early stopping) and the validation and test splits are reported; with ``folds`` K,
the training and validation cases form the pool, fold ``fold`` of it (``cv_folds``, the
same for every loss and seed) is reported as split ``"cv"``, the rest trains, and the test
split is reported as always.

A folder with a ``summary.json`` is a finished run. Started again with the same
configuration, *the same code* (:func:`hie_core.training.config.run_fingerprint`) *and the
same data* (:func:`hie_core.fingerprint.data_fingerprint`: the contents of every file of the
dataset, recorded in ``config.json`` as ``data_fingerprint``) it is loaded, not retrained;
produced by other code or from other data (a corrected label; or a folder from before runs
recorded their data), it is trained again from scratch, and the run says why; with another
configuration it is refused. An unfinished run resumes from its last epoch when both
fingerprints match. A finished run needs only its results files (:data:`hie_core.run_folder.RUN_FILES`): its
weights (:data:`WEIGHT_FILES`) may be deleted to save space, and only predicting with it
(``hie-predict``) then fails, naming the missing file. Only one process at a time trains a
run folder (:func:`hie_core.run_folder.run_lock`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import pandas as pd

from hie_core.config import jsonable, notebook_overrides, upgrade_config
from hie_core.data import (
    Case,
    DatasetError,
    carve_validation,
    discover_cases,
    load_dataset,
)
from hie_core.errors import ConfigError, UserError
from hie_core.fingerprint import (
    DataFingerprint,
    data_fingerprint,
    describe_change,
    edited_results,
    results_checksums,
)
from hie_core.io import atomic_write_text
from hie_core.metrics import METRIC_NAMES, summarize
from hie_core.run_folder import (  # noqa: F401 (the run folder's names, re-exported for older imports)
    RUN_FILES,
    SUMMARY_FILE,
    RunFolderError,
    RunLockedError,
    RunResult,
    is_finished_run,
    load_run,
    project_root,
    read_config,
    read_summary,
    resolve_data_dir,
    run_folder_name,
    run_lock,
    runs_root,
    write_json,
)
from hie_core.synthetic import is_synthetic_dir
from hie_core.training.checkpoints import TRAINING_CHECKPOINT
from hie_core.training.config import (
    TrainConfig,
    make_config,
    provenance,
    run_fingerprint,
)
from hie_core.training.design import (  # noqa: F401 (FOLD_SEED, POOL_SPLITS, cv_folds: re-exported for older imports)
    CV_SPLIT,
    FOLD_SEED,
    POOL_SPLITS,
    cv_folds,
    design_cases,
    reference_cases,
)
from hie_core.training.evaluate import METRIC_COLUMNS, evaluate_baseline, evaluate_ceiling, evaluate_model
from hie_core.training.failure import FAILED_FILE, TrainingDivergedError, read_failure, write_failure
from hie_core.training.fit import BEST, HISTORY_COLUMNS, TrainItem, fit, load_best_model

__all__ = [
    "check_memory",
    "WEIGHT_FILES",
    "resolve_data_dir",
    "run_experiment",
    "summarize_metrics",
    "run_baseline",
    "run_ceiling",
    "notebook_config",
    "default_study_name",
]

#: A run's weights, needed to resume it and to predict with it (``hie-predict``), not for its
#: results, so they may be deleted to save space.
WEIGHT_FILES = (BEST, TRAINING_CHECKPOINT)
#: Settings that may differ when a run folder is reused (they do not change what is trained). The data
#: folder's path is one: its files are compared by the data fingerprint instead, so a link, a trailing slash
#: or a moved copy of the same files is the same dataset, and changed files retrain the run with the reason.
_NOT_COMPARED = ("output_dir", "device", "num_workers", "data_dir")


def summarize_metrics(metrics: pd.DataFrame) -> dict:
    """Per split: mean/sd/median/95% bootstrap CI of dice, masd_mm, nsd (NaN-skipping)."""
    out = {}
    for split, rows in metrics.groupby("split", sort=False):
        if "dice" in rows and rows["dice"].notna().any():
            out[str(split)] = summarize(rows[list(METRIC_NAMES)])
    return out


def _run_state(run_dir: Path, config: TrainConfig, data: DataFingerprint | None = None) -> str:
    """'new', 'resume', 'finished', 'stale' (other code), 'data' (other data: ``data`` differs from
    the recorded fingerprint, or none is recorded), 'incomplete' (a ``summary.json`` without
    another results file), 'edited' (a results file differs from the checksum the run recorded
    in ``summary.json``) or 'failed' (the folder records a failed run, :data:`FAILED_FILE`: it is
    trained again from scratch, whatever its configuration was); raises when the folder holds
    another configuration.

    ``data`` None: the data are not compared.
    """
    if read_failure(run_dir) is not None:
        return "failed"
    info = read_config(run_dir)
    if info is None:
        return "new"
    old = info["config"]
    new = config.to_dict()
    old = jsonable(upgrade_config(old))  # written by an older version: upgraded by the one loader
    diffs = [
        f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if k not in _NOT_COMPARED and old.get(k) != v
    ]
    finished = (run_dir / "summary.json").exists()
    if diffs:
        raise RunFolderError(
            f"{run_dir} holds {'a finished' if finished else 'an unfinished'} run with another configuration "
            f"({'; '.join(diffs)}); choose another output_dir, or delete that folder to start over"
        )
    if info.get("fingerprint") != run_fingerprint(config):
        return "stale"
    if data is not None and describe_change(info.get("data_fingerprint"), data):
        return "data"
    if finished and not is_finished_run(run_dir):
        return "incomplete"
    if finished and edited_results(run_dir, _read_summary(run_dir)):
        return "edited"
    return "finished" if finished else "resume"


def _total_memory_bytes(device: str) -> int | None:
    """The memory a run can use at most: the GPU's, or this machine's RAM (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def check_memory(config: TrainConfig) -> None:
    """Refuse a training window (patch or whole grid) whose step cannot fit the device's memory.

    Raises:
        hie_core.errors.ConfigError: the estimate (:func:`hie_core.model.training_memory_bytes`)
            exceeds the device's whole memory; the message gives both and what to change.
    """
    from hie_core.model import training_memory_bytes

    window = config.patch_shape or config.target_shape
    total = _total_memory_bytes(config.device)
    if window is None or total is None:
        return
    need = training_memory_bytes(
        config.widths, window, config.batch_size, config.arch, config.norm, config.target_spacing_mm
    )
    if need > total:
        what = "patch_shape" if config.patch_shape else "target_shape"
        raise ConfigError(f"{what} {window} with batch_size {config.batch_size} needs about {need / 2**30:,.0f} GiB "
                          f"per training step, more than the {total / 2**30:,.0f} GiB of {config.device}; use a "
                          f"smaller {what} or batch_size")  # fmt: skip


def _read_summary(run_dir: Path) -> dict:
    summary = read_summary(run_dir)  # a damaged summary: the run is redone
    return summary if summary is not None else {"checksums": {SUMMARY_FILE: "unreadable"}}


def _current_data(data_dir: Path) -> DataFingerprint:
    """The fingerprint of the dataset a run loads; an invalid folder raises ``load_dataset``'s full error."""
    try:
        cases = discover_cases(data_dir)
    except DatasetError:
        load_dataset(data_dir)  # every problem in one error (names and contents)
        raise
    return data_fingerprint(data_dir, cases)


def _clear(run_dir: Path) -> None:
    for name in RUN_FILES + WEIGHT_FILES + (FAILED_FILE,):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "predictions", ignore_errors=True)


def _items(pairs) -> list[TrainItem]:
    return [
        TrainItem(case.case_id, pre.image, pre.label, tuple(pre.geometry.spacing_mm)) for case, pre in pairs
    ]


def _write_table(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def _preprocess(cases: list[Case], config: TrainConfig):
    from hie_core.preprocess import PreprocessCache

    cache = PreprocessCache()
    return [(case, cache.get(case, config.grid, zadc_norm=config.zadc_norm)) for case in cases]


def run_experiment(config: TrainConfig, stop_after_epochs: int | None = None) -> RunResult | None:
    """Train and evaluate one loss; resumable; see the module docstring for the files.

    Args:
        config: from :func:`hie_core.training.config.make_config`.
        stop_after_epochs: interrupt training after this many epochs (tests of resuming);
            the run is then left unfinished and ``None`` is returned.

    Raises:
        hie_core.errors.UserError: the data folder is missing or invalid (nothing is
            written), or the run folder holds another configuration, or another process
            is training it (:class:`hie_core.run_folder.RunLockedError`, see :func:`hie_core.run_folder.run_lock`).
    """
    run_dir = Path(config.output_dir)
    check_memory(config)  # a size that cannot fit is refused before anything is read or written
    data_dir = resolve_data_dir(config)
    data = _current_data(data_dir)
    with run_lock(run_dir):
        return _run_locked(config, run_dir, data_dir, data, stop_after_epochs)


def _run_locked(config: TrainConfig, run_dir: Path, data_dir: Path, data: DataFingerprint,
                stop_after_epochs: int | None) -> RunResult | None:  # fmt: skip
    """:func:`run_experiment` once the data are fingerprinted and the run folder is locked."""
    state = _run_state(run_dir, config, data)
    if state == "finished":
        print(
            f"{run_dir}: finished run of this code, configuration and data found - loading it, not retraining"
        )
        gone = [name for name in WEIGHT_FILES if not (run_dir / name).is_file()]
        if gone:
            print(f"{run_dir}: {' and '.join(gone)} deleted; the results stand, but predicting with this run "
                  f"(hie-predict) needs {BEST}")  # fmt: skip
        return load_run(run_dir)
    cases, report = load_dataset(data_dir)  # every problem, before anything is written
    if state == "stale":
        print(f"{run_dir}: this run was produced by other code (its fingerprint differs) - training it again")
        _clear(run_dir)
    elif state == "incomplete":
        gone = ", ".join(name for name in RUN_FILES if not (run_dir / name).is_file())
        print(f"{run_dir}: this finished run misses {gone} - training it again")
        _clear(run_dir)
    elif state == "edited":
        changed = ", ".join(edited_results(run_dir, _read_summary(run_dir)))
        print(f"{run_dir}: {changed} changed since this run wrote it (edited or damaged) - training it again")
        _clear(run_dir)
    elif state == "data":
        why = describe_change(read_config(run_dir).get("data_fingerprint"), data)
        print(f"{run_dir}: {why}; training it again")
        _clear(run_dir)
    elif state == "failed":
        print(f"{run_dir}: this run failed before ({read_failure(run_dir)['message']}) - training it again")
        _clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"config": config.to_dict(), "data_dir_resolved": str(data_dir), "synthetic": is_synthetic_dir(data_dir),
            "n_cases": {s: sum(c.split == s for c in cases) for s in ("train", "val", "test")},
            "empty_labels": len(report.notes), "fingerprint": run_fingerprint(config),
            "data_fingerprint": data.to_dict(),
            **provenance(config.device)}  # fmt: skip
    if state != "resume":
        write_json(info, run_dir / "config.json")
    train_cases, reported = design_cases(cases, report, config)
    fit_cases, selection_cases = carve_validation(train_cases, config.selection_fraction, config.seed)
    t0 = time.perf_counter()
    try:
        result = fit(config, _items(_preprocess(fit_cases, config)), _items(_preprocess(selection_cases, config)),
                     run_dir, stop_after_epochs=stop_after_epochs)  # fmt: skip
    except (TrainingDivergedError, ConfigError) as exc:  # a failed status, never a finished run
        if isinstance(exc, TrainingDivergedError):
            _write_table(
                pd.DataFrame(exc.state.history, columns=list(HISTORY_COLUMNS)), run_dir / "history.csv"
            )
        write_failure(run_dir, exc)
        raise
    _write_table(pd.DataFrame(result.history, columns=list(HISTORY_COLUMNS)), run_dir / "history.csv")
    if not result.finished(config):
        return None  # interrupted on purpose (stop_after_epochs)
    train_seconds = time.perf_counter() - t0
    model, meta = load_best_model(run_dir / BEST, config.device)
    rows = evaluate_model(model, _preprocess(reported, config), run_dir, config.device, config.amp,
                          settings=dataclasses.asdict(config))  # fmt: skip
    metrics = pd.DataFrame(rows).reindex(columns=list(METRIC_COLUMNS))
    _write_table(metrics, run_dir / "metrics.csv")
    summary = {"loss": config.loss, "preset": config.preset, "seed": config.seed, "synthetic": info["synthetic"],
               "best_epoch": meta["epoch"], "epochs_run": len(result.history), "train_seconds_this_call": train_seconds,
               "selection_cases": [c.case_id for c in selection_cases],
               "splits": summarize_metrics(metrics)}  # fmt: skip
    if config.folds >= 2:
        summary.update(folds=config.folds, fold=config.fold,
                       cv_cases=[c.case_id for c in reported if c.split == CV_SPLIT])  # fmt: skip
    summary["checksums"] = results_checksums(run_dir)  # an edited or damaged result is redone, never reported
    write_json(summary, run_dir / "summary.json")
    return load_run(run_dir)


def _reference_run(name: str, rows: list[dict], out_dir: Path, extra: dict) -> pd.DataFrame:
    metrics = pd.DataFrame(rows).reindex(columns=list(METRIC_COLUMNS))
    _write_table(metrics, out_dir / "metrics.csv")
    write_json({"loss": name, **extra, "splits": summarize_metrics(metrics)}, out_dir / "summary.json")
    return metrics


def run_baseline(
    data_dir: str | Path, out_dir: str | Path, threshold: float = -2.0, cv: bool = False
) -> pd.DataFrame:
    """Evaluate ``ZADC < threshold`` on the reported splits; write metrics.csv and summary.json.

    ``cv``: the study cross-validates, so the pool is reported as split ``"cv"`` (and test).
    """
    out_dir = Path(out_dir)
    cases, _ = load_dataset(data_dir)
    reported = reference_cases(cases, cv)
    return _reference_run("zadc_threshold", evaluate_baseline(reported, out_dir, threshold), out_dir,
                          {"threshold": threshold})  # fmt: skip


def run_ceiling(data_dir: str | Path, out_dir: str | Path, config: TrainConfig) -> pd.DataFrame:
    """Evaluate the resampling ceiling of ``config``'s grid on the reported splits (metrics.csv, summary.json).

    The reported splits follow ``config.folds`` as a run's do (the pool as ``"cv"`` with folds).
    """
    out_dir = Path(out_dir)
    cases, _ = load_dataset(data_dir)
    reported = reference_cases(cases, config.folds >= 2)
    return _reference_run("resampling_ceiling", evaluate_ceiling(reported, config.grid, out_dir), out_dir,
                          {"grid": config.grid.to_dict(), "preset": config.preset})  # fmt: skip


def default_study_name(config: TrainConfig) -> str:
    """The study folder's name when none is given: the preset, ``-cv<K>`` with folds, ``-test<N>``
    with a custom synthetic test count (so such studies never mix with the preset's own)."""
    study = config.preset + (f"-cv{config.folds}" if config.folds else "")
    return study + (f"-test{config.synthetic_test_cases}" if config.synthetic_test_cases else "")


def default_run_folder(config: TrainConfig) -> Path:
    """``<study>/<loss>/seed<k>`` (``seed<k>-fold<f>`` with folds), the study as :func:`default_study_name`."""
    run = run_folder_name(config.seed, config.fold if config.folds else None)
    return Path(default_study_name(config)) / config.loss / run


def notebook_config(
    loss: str,
    data_dir: str = "",
    output_dir: str = "",
    preset: str = "auto",
    device: str = "auto",
    overrides: dict | None = None,
    parameters: dict | None = None,
    **fields,
) -> TrainConfig:
    """The configuration of ``notebooks/train.ipynb`` from its parameters cell.

    ``overrides`` (a dict), ``parameters`` (the notebook's ``globals()``: a configuration field
    there came from papermill's ``-p NAME VALUE``) and ``fields`` set any other field of the
    schema (:func:`hie_core.config.notebook_overrides`; ``seed`` among them).

    ``output_dir=""`` means ``runs/<preset>/<loss>/seed<seed>`` under the project root (where
    the study of that preset looks, so a finished notebook run is reused by it; a fold run:
    ``seed<seed>-fold<fold>`` under ``runs/<preset>-cv<folds>/``); the environment variable
    ``HIE_RUNS_DIR`` replaces ``runs`` (a relative path is under the project root); ``None``
    overrides mean "as the preset says". Every parameter is type-checked
    (:class:`~hie_core.errors.ConfigError` names the one that is wrong). Prints the
    preset used, as the notebook shows it.
    """
    given = {**notebook_overrides(overrides, parameters), **fields}
    config = make_config(preset=preset, device=device, loss=loss, data_dir=data_dir, **given)
    if not isinstance(output_dir, str):
        raise UserError(f"output_dir must be a folder path, got {output_dir!r}")
    out = Path(output_dir) if output_dir else runs_root() / default_run_folder(config)
    config = dataclasses.replace(config, output_dir=str(out.resolve()))
    if config.synthetic:
        source = "the embedded SYNTHETIC BONBID-like dataset"
    elif is_synthetic_dir(config.data_dir):
        source = f"SYNTHETIC BONBID-like data in {config.data_dir}"
    else:
        source = f"BONBID-HIE folder {config.data_dir}"
    patches = f"patches {config.patch_shape}" if config.patch_shape else "whole volumes"
    fold = f"; fold {config.fold} of {config.folds} (cross-validation)" if config.folds else ""
    print(
        f"preset: {config.preset} (asked: {preset}); device: {config.device}; loss: {config.loss}; seed {config.seed}"
        + fold
    )
    print(f"data: {source}; grid {config.grid.describe()}; {patches}; widths {config.widths}")
    print(f"epochs <= {config.epochs}, patience {config.patience}, batch {config.batch_size}, "
          f"steps/epoch {config.steps_per_epoch or 'one pass'}, augment {config.augment}")  # fmt: skip
    if config.preset in ("seed", "native") and not config.device.startswith("cuda"):
        print(f"note: the {config.preset} preset is meant for a GPU; on a 2-core CPU one native epoch took "
              "20 minutes. The quick preset is the CPU one.")  # fmt: skip
    return config
