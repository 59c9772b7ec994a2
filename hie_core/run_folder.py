"""The run folder: its name, its lock, its files, and reading and writing its JSON records.

One run of one method leaves one folder::

    runs/<study>/<method>/seed<k>/          a plain run (splits test, val)
    runs/<study>/<method>/seed<k>-fold<f>/  a cross-validation run (split "cv", then test)

holding :data:`RUN_FILES` (``config.json``, ``history.csv``, ``metrics.csv``, ``summary.json``),
``lesions.csv``, ``predictions/<split>/<case_id>_lesion.mha``, the weights (kept by
``hie_core.training``), ``failed.json`` when the run failed, and the lock file ``.lock``.

This module is the folder's one owner, below training, report and study: the folder name is
built only by :func:`run_folder_name` and read only by :func:`parse_run_folder_name`. It
imports nothing above the core.

``config.json`` is read in one place, :func:`read_config`, as it is on disk (a dict: the
configuration under ``"config"``, with the run's provenance). :func:`read_settings` gives the
configuration upgraded to the current schema by the one loader,
:func:`hie_core.config.upgrade_config`, so a run folder written by an older version reads like a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hie_core.errors import UserError
from hie_core.io import atomic_write_text

if TYPE_CHECKING:
    from hie_core.data import Case

__all__ = [
    "CONFIG_FILE",
    "FAILED_FILE",
    "HISTORY_FILE",
    "LESIONS_FILE",
    "LOCK_FILE",
    "LOCK_HOLDER_ENV",
    "METRICS_FILE",
    "PREDICTIONS_DIR",
    "RUN_FILES",
    "SUMMARY_FILE",
    "RunFolderError",
    "RunLockedError",
    "RunResult",
    "is_finished_run",
    "is_run_folder_name",
    "load_run",
    "parse_run_folder_name",
    "prediction_path",
    "project_root",
    "read_config",
    "read_settings",
    "read_failure",
    "read_summary",
    "resolve_data_dir",
    "run_folder_name",
    "run_folders",
    "run_lock",
    "runs_root",
    "study_run_folders",
    "write_json",
    "write_lesions",
]

#: A run's configuration and provenance (``{"config": {...}, "synthetic": ..., ...}``).
CONFIG_FILE = "config.json"
#: One row per epoch (loss, selection scores, learning rate).
HISTORY_FILE = "history.csv"
#: One row per scored case (split, case id, Dice, MASD in mm, NSD, volumes, lesion counts).
METRICS_FILE = "metrics.csv"
#: The run's summary per split, its best epoch and the checksums of its result files.
SUMMARY_FILE = "summary.json"
#: One row per connected lesion of each scored case.
LESIONS_FILE = "lesions.csv"
#: A failed run's record (``{"status": "failed", "message": ...}``).
FAILED_FILE = "failed.json"
#: The predicted masks, ``predictions/<split>/<case_id>_lesion.mha`` on each scan's native grid.
PREDICTIONS_DIR = "predictions"
#: The files of a run's results; a folder holding them all is a finished run, with or without its
#: weights (papermill's executed notebook and log are left alone).
RUN_FILES = (CONFIG_FILE, HISTORY_FILE, METRICS_FILE, SUMMARY_FILE)
#: The lock file in a run folder; it holds the PID of the process that holds the lock.
LOCK_FILE = ".lock"
#: Set by a process that holds a run folder's lock for the notebook it starts (its PID).
LOCK_HOLDER_ENV = "HIE_RUN_LOCK_HOLDER"

_NAME = re.compile(r"^seed(\d+)(?:-fold(\d+))?$")


class RunFolderError(UserError, FileExistsError):
    """The run folder holds a run with another configuration, or an unreadable record."""


class RunLockedError(UserError):
    """Another process holds the run folder's lock (it is training that run now)."""


def run_folder_name(seed: int, fold: int | None = None) -> str:
    """``seed<k>``, or ``seed<k>-fold<f>`` for the run of a cross-validation study holding out fold ``f``."""
    if seed < 0 or (fold is not None and fold < 0):
        raise ValueError(f"seed and fold must be at least 0, got {seed} and {fold}")
    return f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"


def parse_run_folder_name(name: str) -> tuple[int, int | None] | None:
    """``(seed, fold)`` of a run folder's name (fold None for a plain run); None for any other name."""
    match = _NAME.match(name)
    if not match:
        return None
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def is_run_folder_name(name: str) -> bool:
    """True for ``seed<k>`` and ``seed<k>-fold<f>``."""
    return parse_run_folder_name(name) is not None


def run_folders(method_dir: str | Path) -> list[Path]:
    """The run folders of one method folder, ordered by (seed, fold); missing folder: none."""
    method_dir = Path(method_dir)
    if not method_dir.is_dir():
        return []
    found = [(key, p) for p in method_dir.iterdir() if p.is_dir() and (key := parse_run_folder_name(p.name))]
    return [
        p
        for (seed, fold), p in sorted(found, key=lambda kp: (kp[0][0], -1 if kp[0][1] is None else kp[0][1]))
    ]


def study_run_folders(study_dir: str | Path) -> list[Path]:
    """Every run folder of a study (``<study>/<method>/seed<k>[-fold<f>]``), by method, then seed and fold."""
    study_dir = Path(study_dir)
    methods = sorted(p for p in study_dir.iterdir() if p.is_dir()) if study_dir.is_dir() else []
    return [run for method in methods for run in run_folders(method)]


def prediction_path(run_dir: str | Path, case: Case) -> Path:
    """``<run_dir>/predictions/<split>/<id>_lesion.mha`` (BONBID-HIE's label name; ``cases`` without a split)."""
    return Path(run_dir) / PREDICTIONS_DIR / (case.split or "cases") / f"{case.case_id}_lesion.mha"


def write_lesions(rows: Iterable[dict], run_dir: str | Path) -> Path:
    """Write per-lesion rows to ``<run_dir>/lesions.csv`` (:data:`hie_core.lesions.LESION_ROW_COLUMNS`), atomically."""
    from hie_core.lesions import LESION_ROW_COLUMNS

    frame = pd.DataFrame(list(rows)).reindex(columns=list(LESION_ROW_COLUMNS))
    return atomic_write_text(Path(run_dir) / LESIONS_FILE, frame.to_csv(index=False))


def is_finished_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds every results file (:data:`RUN_FILES`); the weights may be gone."""
    return all((Path(run_dir) / name).is_file() for name in RUN_FILES)


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (a reader never sees half a file)."""
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_config(run_dir: str | Path) -> dict | None:
    """The run folder's ``config.json`` as a dict, or None when the folder has none.

    The dict is the file's content (``{"config": {...}, ...}``), as written by the code of its
    day; :func:`read_settings` upgrades its ``config`` entry.

    Raises:
        RunFolderError: the file exists but is unreadable or is not a run's record; the message
            names it and says to delete the run folder to start the run over.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict) or not isinstance(info["config"], dict):
            raise ValueError("not a run's config.json")
    except (OSError, ValueError, KeyError, TypeError):
        raise RunFolderError(f"{path}: unreadable; delete {run_dir} to start this run over") from None
    return info


def read_settings(run_dir: str | Path) -> dict | None:
    """The run's configuration upgraded to every current field (:func:`hie_core.config.upgrade_config`); None without ``config.json``.

    Raises:
        RunFolderError: ``config.json`` is unreadable (:func:`read_config`).
        hie_core.errors.ConfigError: a stored value the schema refuses, naming the field.
    """
    from hie_core.config import upgrade_config

    info = read_config(run_dir)
    return None if info is None else upgrade_config(info["config"])


def read_summary(run_dir: str | Path) -> dict | None:
    """The run folder's ``summary.json`` as a dict; None when it is missing, unreadable or not an object."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def read_failure(run_dir: str | Path) -> dict | None:
    """The run folder's failed status (a dict with at least ``message``), or None when it has none."""
    path = Path(run_dir) / FAILED_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return {"status": "failed", "message": f"{path}: the run failed (its record is unreadable)"}
    return record


@dataclass
class RunResult:
    """What a finished run left in its folder, loaded as tables."""

    run_dir: Path
    config: dict
    history: pd.DataFrame
    metrics: pd.DataFrame
    summary: dict


def load_run(run_dir: str | Path) -> RunResult:
    """Load a finished run folder (:data:`RUN_FILES`); a missing file raises ``FileNotFoundError`` naming it."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name}: missing - is this a finished run folder?")
    return RunResult(
        run_dir,
        json.loads((run_dir / CONFIG_FILE).read_text()),
        pd.read_csv(run_dir / HISTORY_FILE),
        pd.read_csv(run_dir / METRICS_FILE),
        json.loads((run_dir / SUMMARY_FILE).read_text()),
    )


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (``fcntl.flock`` on ``.lock``, non-blocking) while the block runs.

    The lock file records the holder's PID and stays; the lock itself ends with the block, or
    with the process (the OS releases it, even after ``kill -9``). A folder made here and left
    holding nothing else is removed again. A lock held by the process named in
    ``$HIE_RUN_LOCK_HOLDER`` (a study that locked the folder for the notebook it started)
    counts as this process's own.

    Raises:
        RunLockedError: another process holds the lock; the message names the folder and its PID.
    """
    run_dir = Path(run_dir)
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # the run folder first
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            if holder != os.environ.get(LOCK_HOLDER_ENV):
                raise RunLockedError(
                    f"{run_dir}: another process (PID {holder}) is training this run folder now; "
                    "wait for it to end, or stop it"
                ) from None
            made = []
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if made and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        os.close(fd)


def resolve_data_dir(config: Any) -> Path:
    """The data folder a run reads: its ``data_dir`` (which must exist), or the synthetic set (generated on first use).

    Args:
        config: a run configuration, or a mapping of its fields; read are ``data_dir``,
            ``synthetic_preset`` and ``synthetic_test_cases`` (0: the synthetic preset's count).

    Raises:
        UserError: ``data_dir`` names no folder.
    """
    field = config.get if isinstance(config, Mapping) else lambda name: getattr(config, name)
    data_dir = field("data_dir")
    if data_dir:
        path = Path(data_dir).expanduser().resolve()
        if not path.is_dir():
            raise UserError(
                f"data_dir {data_dir!r}: no such folder; give a BONBID-HIE folder, or '' for the embedded synthetic dataset"
            )
        return path
    from hie_core.synthetic import ensure_synthetic_dataset

    test_cases = field("synthetic_test_cases")
    counts = {"test": test_cases} if test_cases else None
    return Path(ensure_synthetic_dataset(preset=field("synthetic_preset"), seed=0, counts=counts))


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml`` and ``hie_core/``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "hie_core").is_dir():
            return folder
    return start


def runs_root() -> Path:
    """Where studies and runs go by default: ``$HIE_RUNS_DIR``, else ``runs``; a relative path is under the project root.

    The study runner, ``notebooks/train.ipynb`` and the book's pages all use it, so a test session
    that sets ``HIE_RUNS_DIR`` keeps everything out of the repository."""
    return project_root() / (os.environ.get("HIE_RUNS_DIR", "").strip() or "runs")
