"""Predictions made elsewhere, checked and scored like ours, and entered into a study as a method.

A folder of predicted masks in the challenge layout (one mask per case, named like the
release's labels, ``<case_id>_lesion.mha``; ``.nii.gz``, ``.nii`` and ``.nrrd`` are read too;
the masks may sit in the folder itself, in its ``3LABEL/`` subfolder, or, as in a run's
``predictions/`` folder, in one subfolder per split, ``<split>/``) is checked against the
reference data of one split, then scored with the metrics of our runs (:mod:`hie_core.metrics`:
Dice, MASD in mm and NSD at 2 mm on each case's native grid, with the official empty-mask
semantics). This is how nnU-Net, MedSAM-2 or a challenge container joins a study without our
shipping its weights.

- :func:`check_predictions` reads every mask and raises one :class:`ExternalPredictionError`
  listing every problem, each naming its file and what to do: a case of the split without a mask,
  a file that cannot be read or is misnamed, a mask off the reference's grid (size, spacing,
  origin, direction), values other than 0 and 1 (a probability map is refused: threshold it
  yourself, so that the threshold is yours and on record). A mask whose case id is in no split of
  the data is not an error: it is warned about (:class:`ExternalPredictionWarning`) and skipped,
  and listed with the problems when there are some (a misspelt case id shows up twice there).
- :func:`score_predictions` gives the rows of a run's ``metrics.csv``
  (:data:`hie_core.training.evaluate.METRIC_COLUMNS`).
- :func:`add_external` writes ``<study>/<name>/seed0/`` (``config.json`` with ``"external": true``,
  ``metrics.csv``, ``summary.json`` with result checksums, ``predictions/<split>/``) into a folder
  that :func:`hie_core.report.analysis.runs.find_runs` reads as one more method. The user's folder is only
  read, never written.
- ``hie-score PRED_FOLDER [--data-dir DIR] [--split test] [--out metrics.csv]`` (also
  ``python -m hie_core.study.score``; the command is :mod:`hie_core.study.score`) prints the per-case
  scores and the study's endpoint (Table 1's: the means over the cases with a lesion, the empty
  labels apart).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hie_core.data import SPLIT_FOLDERS, Case, load_dataset
from hie_core.io import atomic_write_text, read_geometry, read_image, write_image
from hie_core.outputs import resolve_path
from hie_core.study import masks as _masks
from hie_core.study.masks import (  # noqa: F401 (re-exported: the checks are part of this API)
    ExternalMask,
    ExternalPredictionError,
    ExternalPredictionWarning,
    check_predictions,
)

__all__ = [
    "MASK_SUFFIXES",
    "NAME_PATTERN",
    "ExternalMask",
    "ExternalPredictionError",
    "ExternalPredictionWarning",
    "add_external",
    "check_predictions",
    "load_and_check",
    "score_predictions",
]


#: File types a predicted mask may have (MetaImage as in the release, NIfTI, NRRD).
MASK_SUFFIXES: tuple[str, ...] = _masks.MASK_SUFFIXES
#: The form of a name given to outside predictions (it names a folder of the study and a method).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


#: Folders of a study that are not methods.
_STUDY_FOLDERS = ("book", "results", "jobs")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def score_predictions(masks: Sequence[ExternalMask], lesions: list[dict] | None = None) -> pd.DataFrame:
    """Score checked masks as a run's evaluation does (:func:`hie_core.training.evaluate.score_case` on the native grid).

    Args:
        masks: from :func:`check_predictions`.
        lesions: when given, one row per reference and predicted lesion is appended to it
            (:data:`hie_core.lesions.LESION_ROW_COLUMNS`, a run's ``lesions.csv``).

    Returns:
        Columns :data:`hie_core.training.evaluate.METRIC_COLUMNS`: the case, its split, the lesion
        burden (% of the brain, ADC > 0) and stratum, Dice, MASD (mm), NSD, voxel counts and volumes (ml),
        and the lesion-wise columns (:data:`hie_core.lesions.LESION_COLUMNS`).
    """
    from hie_core.training.evaluate import METRIC_COLUMNS, score_case

    rows = []
    for mask in masks:
        adc, geometry = read_image(mask.case.adc)
        row, lesion_rows = score_case(mask.case, read_image(mask.path)[0] != 0, adc, geometry.spacing_mm)
        rows.append(row)  # the NSD tolerance of our runs
        if lesions is not None:
            lesions += lesion_rows
    return pd.DataFrame(rows).reindex(columns=list(METRIC_COLUMNS))


def _split_names(split: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (split.split(",") if isinstance(split, str) else split) if s.strip()]
    unknown = [s for s in names if s not in SPLIT_FOLDERS]
    if not names or unknown:
        raise ExternalPredictionError(f"split {split!r}: give one or more of {', '.join(SPLIT_FOLDERS)} "
                                      "(comma-separated)")  # fmt: skip
    return list(dict.fromkeys(names))


def load_and_check(folder: str | Path, data_dir: str | Path, split: str | Sequence[str] = "test"
                   ) -> tuple[list[ExternalMask], list[Case]]:  # fmt: skip
    """Load the reference data (every problem of it in one error), then check the masks of ``split``.

    Returns:
        ``(masks, all_cases)``: the checked masks and every case of the data folder.
    """
    splits = _split_names(split)
    all_cases, _ = load_dataset(data_dir, require_labels=False)
    cases = [c for c in all_cases if c.split in splits or c.split is None]  # a folder without splits: all
    if not cases:
        raise ExternalPredictionError(f"{data_dir}: no {'/'.join(splits)} cases in this data folder; give the "
                                      "release root or the split's folder (e.g. BONBID2023_Test)")  # fmt: skip
    known = {c.case_id for c in all_cases}
    return check_predictions(folder, cases, known), all_cases


def _is_external_folder(folder: Path) -> bool:
    """Whether a study folder holds outside predictions (its ``seed0/config.json`` says ``"external": true``)."""
    try:
        return json.loads((folder / "seed0" / "config.json").read_text()).get("external") is True
    except (OSError, ValueError, AttributeError):
        return False


def _check_name(study_dir: Path, name: str) -> None:
    from hie_core.losses import LOSS_NAMES
    from hie_core.report.analysis.runs import REFERENCES

    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ExternalPredictionError(f"name {name!r}: give a letter or digit, then up to 63 letters, digits, '.', "
                                      "'_' or '-' (e.g. nnunet, medsam2); it names the method's folder and rows")  # fmt: skip
    if name in LOSS_NAMES or name in REFERENCES or name in _STUDY_FOLDERS:
        raise ExternalPredictionError(f"name {name!r} is one of the study's own (losses {', '.join(LOSS_NAMES)}; "
                                      f"{', '.join(REFERENCES + _STUDY_FOLDERS)}); choose another, e.g. {name}_ext")  # fmt: skip
    target = study_dir / name
    if target.exists() and not _is_external_folder(target):
        raise ExternalPredictionError(f"{target}: already holds something other than outside predictions; choose "
                                      "another name")  # fmt: skip


def _study_facts(study_dir: Path) -> dict:
    """The trained runs' data folder, preset and data fingerprint (refused: none, or cross-validation)."""
    from hie_core.report.analysis.runs import find_runs

    trained = [r for r in find_runs(study_dir).runs if r.seed is not None and not r.config.get("external")]
    if not trained:
        raise ExternalPredictionError(f"{study_dir}: no finished trained run to compare with; run the study first "
                                      "(`python -m hie_core.study`)")  # fmt: skip
    if any(r.fold is not None for r in trained):
        raise ExternalPredictionError(f"{study_dir}: a cross-validation study (seed<k>-fold<f> runs) scores each "
                                      "fold's own cases; outside predictions join plain studies only (no --folds)")  # fmt: skip
    config = trained[0].config
    recorded = next((r.config["data_fingerprint"] for r in trained if r.config.get("data_fingerprint")), None)
    return {"data_dir_resolved": config.get("data_dir_resolved"), "synthetic": bool(config.get("synthetic")),
            "preset": config.get("config", {}).get("preset"), "data_fingerprint": recorded}  # fmt: skip


def _study_data(study_dir: Path, facts: dict, data_dir: str | Path):
    """The study's data folder (``data_dir`` must be it, when given) and its current fingerprint."""
    from hie_core.data import discover_cases
    from hie_core.fingerprint import data_fingerprint, describe_change

    if not facts["data_dir_resolved"]:
        raise ExternalPredictionError(
            f"{study_dir}: its runs do not record their data folder; run the study again"
        )
    folder = Path(facts["data_dir_resolved"])
    given = resolve_path(data_dir) if data_dir else None
    if given is not None and given != resolve_path(folder):  # elsewhere: the same data if the same files
        recorded = facts["data_fingerprint"]
        same = given.is_dir() and recorded is not None and not describe_change(
            recorded, data_fingerprint(given, discover_cases(given)))  # fmt: skip
        if not same:
            raise ExternalPredictionError(f"data_dir {str(data_dir)!r}: the study's runs were scored on {folder}, and "
                                          "this folder does not hold the same files; outside predictions are scored "
                                          "on the same data (give that folder or a copy of it, or none)")  # fmt: skip
        folder = given
    if not folder.is_dir():
        raise ExternalPredictionError(f"{folder}: the study's data folder is gone; restore it, or give its new place "
                                      "as the data folder")  # fmt: skip
    current = data_fingerprint(folder, discover_cases(folder))
    if facts["data_fingerprint"] is not None:
        why = describe_change(facts["data_fingerprint"], current)
        if why:
            raise ExternalPredictionError(f"{study_dir}: {why}; run the study again first, so that its runs and the "
                                          "outside predictions are scored on the same data")  # fmt: skip
    return folder, current


def _write_run(run: Path, metrics: pd.DataFrame, masks: Sequence[ExternalMask], info: dict,
               summary: dict) -> None:  # fmt: skip
    """Fill a fresh run folder: predictions/<split>/ (0/1 uint8 on the reference grid), metrics, config, summary."""
    from hie_core.preprocess import file_sha256
    from hie_core.run_folder import prediction_path

    for mask in masks:
        array = read_image(mask.path)[0] != 0
        write_image(array.astype(np.uint8), read_geometry(mask.case.label), prediction_path(run, mask.case))
    atomic_write_text(run / "metrics.csv", metrics.to_csv(index=False))
    atomic_write_text(run / "config.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    summary["checksums"] = {f: file_sha256(run / f) for f in ("config.json", "metrics.csv")}  # no history.csv
    atomic_write_text(run / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")


def add_external(study_dir: str | Path, name: str, folder: str | Path, data_dir: str | Path = "",
                 split: str | Sequence[str] = "test", overwrite: bool = False) -> Path:  # fmt: skip
    """Score a folder of outside predictions against a study's data and add it to the study as a method.

    Everything is checked before anything is written: the name, the study (finished plain runs),
    the data (the study's folder, unchanged since its runs) and every mask (:func:`check_predictions`).
    ``<study_dir>/<name>/seed0/`` is then built in a hidden temporary folder of the study and renamed
    into place, so it appears complete or not at all. The prediction folder is only read.

    Args:
        study_dir: a study folder with finished trained runs (``runs/<study>``).
        name: the method's folder and row name (:data:`NAME_PATTERN`: a letter or digit, then letters,
            digits, ``.``, ``_``, ``-``); not a loss name, ``baseline``, ``ceiling``, ``book``, ``results`` or ``jobs``.
        folder: the predicted masks (see :func:`check_predictions`).
        data_dir: the reference data; empty for the study's own data folder (any other is refused).
        split: the split(s) scored, comma-separated or a sequence (default ``"test"``).
        overwrite: replace outside predictions already added under ``name`` from other masks. Adding
            the same masks again (same files, same data, same splits) leaves the folder as it is.

    Returns:
        ``<study_dir>/<name>/seed0``.

    Raises:
        ExternalPredictionError: a bad name, a name taken, a study or data that do not fit, every
            problem of the masks (one message).
    """
    from hie_core.preprocess import file_sha256
    from hie_core.run_folder import write_lesions
    from hie_core.training.experiment import summarize_metrics

    study_dir = Path(study_dir).expanduser()
    _check_name(study_dir, name)
    splits = _split_names(split)
    facts = _study_facts(study_dir)
    data_folder, fingerprint = _study_data(study_dir, facts, data_dir)
    target = study_dir / name
    source = Path(folder).expanduser().resolve()
    if source == target.resolve() or target.resolve() in source.parents:
        raise ExternalPredictionError(f"{folder}: is inside {target}, which this would replace; copy the masks "
                                      "elsewhere first")  # fmt: skip
    masks, _ = load_and_check(source, data_folder, splits)
    files = {m.path.name: file_sha256(m.path) for m in masks}
    if target.exists():
        old = json.loads((target / "seed0" / "config.json").read_text())
        same = (old.get("source_files") == files and old.get("splits") == splits
                and (old.get("data_fingerprint") or {}).get("digest") == fingerprint.digest)  # fmt: skip
        if same and (target / "seed0" / "summary.json").is_file():
            return target / "seed0"
        if not overwrite:
            raise ExternalPredictionError(f"{target}: outside predictions named {name!r} (from "
                                          f"{old.get('source_folder')}) are already in this study; choose another "
                                          "name, or delete that folder to replace them")  # fmt: skip
    lesions: list[dict] = []
    metrics = score_predictions(masks, lesions)
    n_cases = {s: int((metrics["split"] == s).sum()) for s in splits}
    info = {"external": True, "label": name, "loss": "external", "source_folder": str(source),
            "source_files": files, "data_dir": str(data_dir), "data_dir_resolved": facts["data_dir_resolved"],
            "synthetic": facts["synthetic"], "data_fingerprint": fingerprint.to_dict(), "splits": splits,
            "n_cases": n_cases,
            "config": {"external": True, "label": name, "loss": "external", "preset": facts["preset"], "seed": 0,
                       "data_dir": str(data_dir)}}  # fmt: skip
    summary = {"external": True, "label": name, "loss": "external", "preset": facts["preset"], "seed": 0,
               "synthetic": facts["synthetic"], "splits": summarize_metrics(metrics)}  # fmt: skip
    # Built in a hidden folder of the study (same file system), as <tmp>/<name>/seed0: no method folder
    # of the study (a folder holding seed<k>) appears until the rename.
    tmp = Path(tempfile.mkdtemp(prefix=".external-", dir=study_dir))
    try:
        _write_run(tmp / name / "seed0", metrics, masks, info, summary)
        write_lesions(lesions, tmp / name / "seed0")  # lesions.csv, as a run's evaluation writes it
        for path in (tmp / name, tmp / name / "seed0"):
            path.chmod(0o777 & ~_umask())
        if target.exists():  # overwrite: the old folder leaves by one rename, the new one arrives by another
            (tmp / name).rename(tmp / "new")
            target.rename(tmp / name)
            (tmp / "new").rename(target)
        else:
            (tmp / name).rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "seed0"
