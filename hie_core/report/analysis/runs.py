"""A study folder's run folders, read and checked, and the case volumes its viewers show.

The layout (written by :mod:`hie_core.study`)::

    runs/<study>/<method>/seed<k>/   config.json, history.csv, metrics.csv, summary.json, lesions.csv, predictions/
    runs/<study>/<method>/seed<k>-fold<f>/   the same, for a cross-validation study (split "cv")
    runs/<study>/<name>/seed0/     config.json ("external": true), metrics.csv, summary.json (outside predictions)
    runs/<study>/baseline/         metrics.csv, predictions/       (ZADC < -2)
    runs/<study>/ceiling/          metrics.csv                     (reference label, grid round trip)

A method (:mod:`hie_core.methods`) is any folder of the study holding ``seed<k>`` folders: a loss
name, or a loss with a network and grid values (``tversky_hdt@segresnet``,
``tversky_hdt+hybrid_weight=0.3``), or a folder of outside predictions (one seed, never trained).
A run folder counts once it holds ``summary.json``; folders without it are listed as
unfinished, never silently dropped. Everything is checked before a caller writes anything:
columns, finite scores in range, one row per case, one data folder and one preset per study,
and either cross-validation runs (``seed<k>-fold<f>``) or plain ones (``seed<k>``), never both.

The lesion-wise columns (:data:`LESION_SCORE_COLUMNS`, :mod:`hie_core.lesions`) are optional: a run
folder written before them gets them from its ``lesions.csv`` (one row per lesion, which
:func:`hie_core.report.analysis.lesion_tables.add_lesion_files` computes from its saved masks), else NaN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hie_core.errors import UserError
from hie_core.fingerprint import edited_results
from hie_core.lesions import LESION_COLUMNS, LESION_ROW_COLUMNS, columns_from_rows
from hie_core.methods import grid_keys_of, is_external, is_seed_method, method_label, sort_methods
from hie_core.run_folder import parse_run_folder_name, prediction_path, read_failure, run_folders

if TYPE_CHECKING:
    from hie_core.data import Case
    from hie_core.preprocess import Grid

__all__ = [
    "LESIONS_CSV",
    "LESION_SCORE_COLUMNS",
    "REFERENCES",
    "SCORE_COLUMNS",
    "RunFolder",
    "StudyFolderError",
    "StudyRuns",
    "find_runs",
    "load_case",
    "method_folders",
    "load_prediction",
    "read_lesions",
    "run_grid",
]

#: Rows of Table 1 that are not losses: the threshold baseline and the resampling ceiling.
REFERENCES = ("baseline", "ceiling")
#: The per-case scores every ``metrics.csv`` must have (a subset of ``METRIC_COLUMNS``).
SCORE_COLUMNS = ("case_id", "split", "burden_percent", "stratum", "dice", "masd_mm", "nsd", "n_pred", "n_ref")
#: The lesion-wise per-case columns (optional: from ``lesions.csv`` for older run folders, else NaN).
LESION_SCORE_COLUMNS = LESION_COLUMNS
#: A run folder's per-lesion rows (:data:`hie_core.lesions.LESION_ROW_COLUMNS`).
LESIONS_CSV = "lesions.csv"
_UNIT_INTERVAL = ("dice", "nsd", "lesion_sensitivity", "lesion_f1", "lesion_dice")  # scores in [0, 1]


#: What to do about a damaged run folder: the study redoes a run whose results changed after it wrote them.
_REDO = (
    "run the study again with the same options: it trains that run again (a run from before result "
    "checksums: delete its folder first)"
)


class StudyFolderError(UserError, ValueError):
    """A study folder that cannot be reported; the message names the file and what to do."""


@dataclass(frozen=True)
class RunFolder:
    """One finished run folder (a method, seed and maybe fold), or the baseline / ceiling folder.

    Attributes:
        method: A method id (:mod:`hie_core.methods`; a loss name for the seed's six), ``"baseline"``
            or ``"ceiling"``.
        seed: The seed ``k`` of ``seed<k>``; None for the references.
        path: The folder.
        config: Its ``config.json`` ({} for the references).
        metrics: Its ``metrics.csv``, checked (one row per case and split).
        summary: Its ``summary.json`` ({} for the references).
        fold: The held-out fold ``f`` of ``seed<k>-fold<f>`` (cross-validation); None otherwise.
    """

    method: str
    seed: int | None
    path: Path
    config: dict
    metrics: pd.DataFrame = field(repr=False)
    summary: dict = field(default_factory=dict, repr=False)
    fold: int | None = None

    def history(self) -> pd.DataFrame:
        """The run's ``history.csv`` (per epoch)."""
        return pd.read_csv(self.path / "history.csv")

    def lesions(self) -> pd.DataFrame:
        """The run's ``lesions.csv`` (one row per reference and predicted lesion); no rows when absent."""
        return read_lesions(self.path / LESIONS_CSV)


@dataclass
class StudyRuns:
    """The finished runs of a study: losses in table order, seeds (then folds) ascending, then references."""

    study_dir: Path
    runs: list[RunFolder]
    unfinished: list[str]

    @property
    def methods(self) -> list[str]:
        """Methods with at least one finished run, in table order, no reference.

        The order is :func:`hie_core.methods.sort_methods`'s, the six losses, other trained
        methods, then outside predictions."""
        return sort_methods([r.method for r in self.runs if r.seed is not None], self.external)

    @property
    def external(self) -> list[str]:
        """Methods that are outside predictions, marked ``external`` in their ``config.json``."""
        return list(
            dict.fromkeys(r.method for r in self.runs if r.seed is not None and is_external(r.config))
        )

    @property
    def losses(self) -> list[str]:
        """Trained methods (every method but outside predictions), in table order."""
        outside = set(self.external)
        return [m for m in self.methods if m not in outside]

    @property
    def seed_methods(self) -> list[str]:
        """The seed's methods that ran, the losses the hypotheses are tested on (its six losses on its network, no grid value)."""
        return [m for m in self.losses if is_seed_method(m)]

    @property
    def labels(self) -> dict[str, str]:
        """Each method's display name (:func:`hie_core.methods.method_label` of its first run's ``config.json``)."""
        first = {}
        for run in self.runs:
            if run.seed is not None:
                first.setdefault(run.method, run.config)
        return {m: method_label(first[m], grid_keys_of(m)) for m in self.methods}

    @property
    def seeds(self) -> list[int]:
        """Every seed that has a finished run of some loss."""
        return sorted({r.seed for r in self.runs if r.seed is not None})

    @property
    def folds(self) -> list[int]:
        """Every held-out fold that has a finished run (empty without cross-validation)."""
        return sorted({r.fold for r in self.runs if r.fold is not None})

    def of(self, method: str) -> list[RunFolder]:
        """The runs of one method (its seeds, or the one reference folder)."""
        return [r for r in self.runs if r.method == method]

    @property
    def configs(self) -> list[dict]:
        return [r.config for r in self.runs if r.config]

    def scores(self) -> pd.DataFrame:
        """Every per-case row of every run, with ``method``, ``seed`` and ``fold`` columns.

        ``fold`` is the run's held-out fold in cross-validation (its rows of split ``"cv"``
        are that fold's cases); None (NaN) for other runs and the references.
        """
        frames = [r.metrics.assign(method=r.method, seed=r.seed, fold=r.fold) for r in self.runs]
        return pd.concat(frames, ignore_index=True)

    def lesions(self) -> pd.DataFrame:
        """Every run's per-lesion rows (``lesions.csv``) with ``method``, ``seed`` and ``fold`` columns."""
        frames = [r.lesions().assign(method=r.method, seed=r.seed, fold=r.fold) for r in self.runs]
        return pd.concat(frames, ignore_index=True)


def _fail(path: Path, problem: str, fix: str) -> StudyFolderError:
    return StudyFolderError(f"{path}: {problem}; {fix}")


def _read_columns(path: Path, columns, fix: str) -> pd.DataFrame:
    """A CSV file that must hold ``columns``; an unreadable file or a missing column says ``fix``."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable ({exc.__class__.__name__}: {exc})", fix) from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _fail(path, f"missing columns {missing}", fix)
    return frame


def _read_metrics(path: Path) -> pd.DataFrame:
    """``metrics.csv`` with the score columns checked: present, finite or NaN, in range, unique."""
    redo = _REDO
    frame = _read_columns(path, SCORE_COLUMNS, redo)
    frame = frame[frame["dice"].notna()].copy()  # rows without a label carry no score
    frame = _with_lesion_columns(frame, path)
    for col in ("dice", "masd_mm", "nsd", "n_pred", "n_ref", *LESION_SCORE_COLUMNS):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        if np.isinf(values).any() or (np.isnan(values) & frame[col].notna().to_numpy()).any():
            raise _fail(path, f"column {col!r} holds a non-numeric or infinite value", redo)
        frame[col] = values
    for col in _UNIT_INTERVAL:  # dice and nsd always defined; a lesion sensitivity is NaN on an empty label
        values = frame[col] if col in ("dice", "nsd") else frame[col].dropna()
        if not values.between(0, 1).all():
            raise _fail(path, f"column {col!r} has values outside [0, 1]", redo)
    dup = frame.duplicated(["split", "case_id"])
    if dup.any():
        raise _fail(path, f"case {frame.loc[dup, 'case_id'].iloc[0]!r} appears twice", redo)
    return frame.reset_index(drop=True)


def read_lesions(path: Path) -> pd.DataFrame:
    """A ``lesions.csv`` (:data:`hie_core.lesions.LESION_ROW_COLUMNS`), checked; no rows when the file is absent."""
    if not path.is_file():
        return pd.DataFrame(columns=list(LESION_ROW_COLUMNS))
    frame = _read_columns(path, LESION_ROW_COLUMNS, _LESION_FIX)
    frame["matched"] = frame["matched"].astype(str).str.lower().eq("true")
    return frame


_LESION_FIX = "delete it and rewrite it with `python -m hie_core.report.analysis.lesion_tables <study folder>`"


def _with_lesion_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` with the lesion columns: its own, else from ``lesions.csv`` beside it, else NaN."""
    if all(c in frame.columns for c in LESION_SCORE_COLUMNS):
        return frame
    frame = frame.drop(columns=[c for c in LESION_SCORE_COLUMNS if c in frame.columns])
    lesions_csv = path.parent / LESIONS_CSV
    if not lesions_csv.is_file():
        return frame.assign(**dict.fromkeys(LESION_SCORE_COLUMNS, np.nan))
    columns = columns_from_rows(read_lesions(lesions_csv), frame)
    return pd.concat([frame.reset_index(drop=True), columns[list(LESION_SCORE_COLUMNS)]], axis=1)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable ({exc.__class__.__name__})", _REDO) from exc


def _seed_fold(folder: Path) -> tuple[int, int | None]:
    """(seed, fold or None) of a ``seed<k>`` or ``seed<k>-fold<f>`` folder."""
    return parse_run_folder_name(folder.name)


def _run_folders(study_dir: Path, method: str) -> list[Path]:
    """A method's run folders (finished or not), by seed then fold."""
    return run_folders(study_dir / method)


def method_folders(study_dir: Path) -> dict[str, list[Path]]:
    """Every method folder of a study (a folder holding ``seed<k>`` folders; not a reference) -> its run folders."""
    found = {}
    for folder in sorted(p for p in study_dir.iterdir() if p.is_dir()) if study_dir.is_dir() else []:
        if folder.name in REFERENCES:
            continue
        runs = _run_folders(study_dir, folder.name)
        if runs:
            found[folder.name] = runs
    return found


def _external_folder(folder: Path) -> bool:
    """Whether a run folder holds outside predictions (its ``config.json`` says ``"external": true``)."""
    try:
        return is_external(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError, AttributeError):
        return False


def _check_one_design(folders: list[Path]) -> None:
    """Cross-validation runs and plain runs in one study cannot be reported together."""
    fold_runs = [p for p in folders if _seed_fold(p)[1] is not None]
    plain = [p for p in folders if _seed_fold(p)[1] is None]
    if fold_runs and plain:
        raise StudyFolderError(
            f"{plain[0]} and {fold_runs[0]}: one study mixes plain runs (seed<k>) and cross-validation runs "
            "(seed<k>-fold<f>), which report different splits; move one kind to its own study folder"
        )


def _loss_runs(study_dir: Path, loss: str, folders: list[Path]) -> tuple[list[RunFolder], list[str]]:

    runs, unfinished = [], []
    for folder in folders:
        failed = read_failure(folder)
        if failed is not None or not (folder / "summary.json").is_file():
            unfinished.append(f"{loss}/{folder.name}" + (" (failed)" if failed is not None else ""))
            continue
        seed, fold = _seed_fold(folder)
        config, summary = _read_json(folder / "config.json"), _read_json(folder / "summary.json")
        changed = edited_results(folder, summary)
        if changed:
            raise _fail(folder, f"{', '.join(changed)} changed since the run wrote it (edited or damaged), so its "
                        "scores are not reported", _REDO)  # fmt: skip
        runs.append(
            RunFolder(loss, seed, folder, config, _read_metrics(folder / "metrics.csv"), summary, fold)
        )
    return runs, unfinished


def _check_same(runs: list[RunFolder], key: str, read: Any) -> None:
    values = {}
    for run in runs:
        values.setdefault(json.dumps(read(run.config), default=str), run.path)
    if len(values) > 1:
        (a, pa), (b, pb) = list(values.items())[:2]
        raise StudyFolderError(
            f"{pa} and {pb} differ in {key} ({a} vs {b}): one study must use one {key}; "
            "move the other runs to their own study folder"
        )


def find_runs(study_dir: str | Path) -> StudyRuns:
    """Read and check every run folder of a study (see the module docstring for the layout).

    Raises:
        StudyFolderError: No study folder, no finished run, an unreadable or inconsistent file,
            plain and cross-validation runs mixed (named in the message).
    """
    study_dir = Path(study_dir).expanduser()
    if not study_dir.is_dir():
        raise StudyFolderError(f"{study_dir}: no such study folder; run `python -m hie_core.study` first")
    runs, unfinished = [], []
    folders = method_folders(study_dir)
    outside = {m for m, found in folders.items() if all(_external_folder(p) for p in found)}
    _check_one_design([p for m, found in folders.items() if m not in outside for p in found])
    for method in sort_methods(list(folders), outside):
        found, pending = _loss_runs(study_dir, method, folders[method])
        runs += found
        unfinished += pending
    if not runs:
        raise StudyFolderError(
            f"{study_dir}: no finished run folder (expected e.g. {study_dir / 'dice' / 'seed0' / 'summary.json'}); "
            "run `python -m hie_core.study` first"
        )
    trained = [r for r in runs if not is_external(r.config)]
    _check_same(trained, "data folder", lambda c: c.get("data_dir_resolved"))
    _check_same(trained, "preset", lambda c: c.get("config", {}).get("preset"))
    for ref in REFERENCES:
        csv = study_dir / ref / "metrics.csv"
        if csv.is_file():
            runs.append(RunFolder(ref, None, study_dir / ref, {}, _read_metrics(csv)))
    return StudyRuns(study_dir, runs, unfinished)


def seed_grid() -> Grid:
    """The seed protocol's preprocessing grid: the ``seed`` preset's ``target_shape``."""
    from hie_core.config import preset_values
    from hie_core.preprocess import Grid

    return Grid(shape=tuple(preset_values("seed")["target_shape"]))


def run_grid(config: Mapping[str, Any]) -> Grid:
    """The preprocessing grid of a run configuration (``TrainConfig`` fields): a shape or a spacing."""
    from hie_core.preprocess import Grid

    shape, spacing = config.get("target_shape"), config.get("target_spacing_mm")
    return Grid(shape=tuple(shape) if shape else None, spacing_mm=tuple(spacing) if spacing else None)


def load_case(case: Case) -> dict[str, Any]:
    """One case's maps: ``adc``, ``zadc`` (float32 (D, H, W)), ``label`` (bool, or None), ``geometry``, ``case_id``, ``split``."""
    from hie_core.io import read_image

    adc, geometry = read_image(case.adc, dtype=np.float32)
    zadc = read_image(case.zadc, dtype=np.float32)[0]
    label = None if case.label is None else read_image(case.label)[0] > 0
    return {"adc": adc, "zadc": zadc, "label": label, "geometry": geometry, "case_id": case.case_id,
            "split": case.split}  # fmt: skip


def load_prediction(folder: Path, case: Case) -> np.ndarray | None:
    """A run's (or the baseline's) saved mask of ``case`` on its native grid, bool (D, H, W); None if absent."""
    from hie_core.io import read_image

    path = prediction_path(folder, case)
    return read_image(path)[0] > 0 if path.is_file() else None
