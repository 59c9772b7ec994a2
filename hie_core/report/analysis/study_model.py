"""The results model: one object per study, built once, that every page of the report reads.

:func:`load_study` returns a :class:`Study` for a study folder (``runs/<study>/``) and keeps it
for the process, keyed by the folder and the modification times of the files it reads
(``results/study.json`` and every run folder's records), so the pages of one notebook share one
reading of the folder and a rewritten file is read again. Each part is read when first asked:

- :attr:`Study.results`: the result tables and ``study.json`` (:class:`~hie_core.report.analysis.results.StudyResults`),
  None before ``python -m hie_core.report.analysis.results`` wrote them;
- :attr:`Study.config`: ``study.json`` typed (:class:`~hie_core.report.analysis.study_records.StudyConfig`);
- :attr:`Study.runs`: the run folders, read and checked once (:func:`hie_core.report.analysis.runs.find_runs`:
  scores in range, checksums of the results files);
- :meth:`Study.run_configs`: each finished run's ``config.json`` typed
  (:class:`~hie_core.report.analysis.study_records.RunConfig`);
- :meth:`Study.scores` and :meth:`Study.score_matrix`: the per-case per-run scores, long and as a
  ``(cases, runs)`` matrix;
- :meth:`Study.history`: a run's per-epoch ``history.csv``, read when asked and kept.

What a page needs about the study whether or not its results are written (the data folder, the
run settings, the networks) has one answer here, with one fallback: ``study.json`` when it
exists, else the first trained run's ``config.json`` (:attr:`Study.data_dir`, :attr:`Study.run_settings`).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hie_core.report.analysis import tables
from hie_core.report.analysis.results import RESULTS_DIR, StudyResults, read_results
from hie_core.report.analysis.runs import REFERENCES, StudyFolderError, StudyRuns, find_runs, load_prediction
from hie_core.report.analysis.study_records import RunConfig, StudyConfig
from hie_core.run_folder import (
    CONFIG_FILE,
    FAILED_FILE,
    LESIONS_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    RunFolderError,
    parse_run_folder_name,
    read_config,
    run_folder_name,
    study_run_folders,
)

if TYPE_CHECKING:
    from hie_core.data import Case

__all__ = ["Study", "clear_cache", "load_study"]

_STUDY_JSON = "study.json"
_RUN_RECORDS = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, LESIONS_FILE, FAILED_FILE)


class Study:
    """A study folder, read once (see the module docstring). Build it with :func:`load_study`.

    Attributes:
        path: The study folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._histories: dict[tuple[str, int | None, int | None], pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r})"

    # -- the result files -------------------------------------------------------------------
    @property
    def has_results(self) -> bool:
        """Whether ``results/study.json`` exists (the results step ran)."""
        return (self.path / RESULTS_DIR / _STUDY_JSON).is_file()

    @cached_property
    def results(self) -> StudyResults | None:
        """The result tables and ``study.json``; None when not written yet.

        Raises:
            StudyFolderError: ``study.json`` exists but a table is missing (the message says how to write it).
        """
        return read_results(self.path) if self.has_results else None

    def require_results(self) -> StudyResults:
        """:attr:`results`, or a :class:`~hie_core.report.analysis.runs.StudyFolderError` that says how to write them."""
        return self.results if self.results is not None else read_results(self.path)

    @property
    def config(self) -> StudyConfig | None:
        """``study.json`` typed; None when the results are not written yet."""
        return None if self.results is None else self.results.config

    # -- the run folders ---------------------------------------------------------------------
    @cached_property
    def runs(self) -> StudyRuns:
        """Every finished run folder, read and checked once (:func:`hie_core.report.analysis.runs.find_runs`)."""
        return find_runs(self.path)

    def run_configs(self) -> list[RunConfig]:
        """Each finished run's ``config.json`` typed, in the runs' order (references left out)."""
        return self._run_configs

    @cached_property
    def _run_configs(self) -> list[RunConfig]:
        return [RunConfig.from_json(r.config, r.method, r.seed, r.fold, r.path) for r in self.runs.runs
                if r.seed is not None]  # fmt: skip

    def run_config(self, method: str) -> RunConfig:
        """The first finished run's ``config.json`` of ``method``, typed.

        Raises:
            KeyError: ``method`` has no finished run.
        """
        found = next((c for c in self.run_configs() if c.method == method), None)
        if found is None:
            raise KeyError(f"no finished run of {method!r} in {self.path}")
        return found

    def _first_trained(self) -> RunConfig:
        configs = self.run_configs()
        return next((c for c in configs if not c.external), configs[0])

    @cached_property
    def recorded_configs(self) -> list[RunConfig]:
        """The ``config.json`` of every run folder that has a readable one, finished or not, unchecked.

        For what a page says about a study that cannot be reported yet (still running, a damaged
        run); :meth:`run_configs` is the checked list of finished runs. A study from before run
        folders had seeds (``<loss>/config.json``) counts its method folders as runs.
        """
        old_layout = sorted(
            p for p in self.path.iterdir() if (p / CONFIG_FILE).is_file()
        )  # <loss>/config.json
        out = []
        for folder in [*study_run_folders(self.path), *old_layout]:
            try:
                config = read_config(folder)
            except RunFolderError:
                continue
            if config is not None:
                seed, fold = parse_run_folder_name(folder.name) or (None, None)
                method = folder.parent.name if seed is not None else folder.name
                out.append(RunConfig.from_json(config, method, seed, fold, folder))
        return out

    @property
    def data_dir(self) -> str:
        """The data folder the study read (``study.json``'s, else the first trained run's).

        Raises:
            StudyFolderError: Neither results nor a finished run.
        """
        return self.config.data_dir if self.config is not None else self._first_trained().data_dir

    @property
    def run_settings(self) -> dict[str, Any]:
        """The study's run settings, ``TrainConfig`` fields (``study.json``'s, else the first trained run's)."""
        if self.config is not None:
            return dict(self.config.run_config)
        return dict(self._first_trained().settings)

    @property
    def synthetic(self) -> bool | None:
        """Whether the study ran on synthetic data (``study.json``'s flag, else any recorded run's); None if neither."""
        if self.has_results:  # the flag alone: the book's title needs it even when a table is missing
            try:
                return bool(json.loads((self.path / RESULTS_DIR / _STUDY_JSON).read_text()).get("synthetic"))
            except (OSError, ValueError, AttributeError):
                pass
        flags = [c.synthetic for c in self.recorded_configs]
        return any(flags) if flags else None

    @property
    def archs(self) -> tuple[str, ...]:
        """The networks the study's finished runs trained, sorted."""
        return tuple(sorted({c.arch for c in self.run_configs() if not c.external}))

    @property
    def labels(self) -> dict[str, str]:
        """Each method's display name (``study.json``'s, else from the run folders)."""
        if self.config is not None and self.config.method_labels:
            return dict(self.config.method_labels)
        return self.runs.labels

    # -- scores and histories ----------------------------------------------------------------
    @cached_property
    def _scores(self) -> pd.DataFrame:
        return tables.run_scores(self.runs.scores())

    def scores(self) -> pd.DataFrame:
        """One row per method, split, case and seed (:func:`hie_core.report.analysis.tables.run_scores`; seed -1 for a reference)."""
        return self._scores

    def score_matrix(
        self, method: str, split: str, metric: str, cases: list[str] | None = None
    ) -> np.ndarray:
        """``(cases, runs)`` matrix of ``metric`` for ``method`` on ``split``; ``cases``: every case of the split in file order."""
        if cases is None:
            rows = self._scores[(self._scores["method"] == method) & (self._scores["split"] == split)]
            cases = list(dict.fromkeys(rows["case_id"]))
        return tables.matrix(self._scores, method, split, metric, cases)

    def history(self, method: str, seed: int, fold: int | None = None) -> pd.DataFrame:
        """The per-epoch ``history.csv`` of one run, read on first use and kept.

        Raises:
            KeyError: No finished run of ``method`` with that seed and fold.
        """
        key = (method, seed, fold)
        if key not in self._histories:
            run = next((r for r in self.runs.of(method) if (r.seed, r.fold) == (seed, fold)), None)
            if run is None:
                raise KeyError(f"no finished run {method}/{run_folder_name(seed, fold)}")
            self._histories[key] = run.history()
        return self._histories[key]

    def histories(self, method: str) -> dict[int, pd.DataFrame]:
        """Seed -> ``history.csv`` of ``method``'s run of that seed (its first fold in cross-validation), read on first use."""
        first: dict[int, int | None] = {}
        for run in self.runs.of(method):
            first.setdefault(run.seed, run.fold)
        return {seed: self.history(method, seed, fold) for seed, fold in first.items()}

    def best_epochs(self, method: str) -> list[int]:
        """The best epoch each finished run of ``method`` recorded in ``summary.json`` (runs without one left out)."""
        return [
            int(r.summary["best_epoch"])
            for r in self.runs.of(method)
            if r.summary.get("best_epoch") is not None
        ]

    def predictions(self, case: Case) -> dict[str, np.ndarray]:
        """Method -> the first run's saved mask of ``case`` (bool (D, H, W)), for every method and reference that has one."""
        out = {}
        for method in [*self.runs.methods, *REFERENCES]:
            folders = self.runs.of(method)
            mask = load_prediction(folders[0].path, case) if folders else None
            if mask is not None:
                out[method] = mask
        return out


def _signature(path: Path) -> tuple:
    """What changes when a file the model read changes: (name, mtime ns, size) of each of them."""
    files = [path / RESULTS_DIR / _STUDY_JSON, *(path / ref / METRICS_FILE for ref in REFERENCES)]
    files += [run / name for run in study_run_folders(path) for name in _RUN_RECORDS]
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


_CACHE: dict[Path, tuple[tuple, Study]] = {}


def load_study(path: str | Path) -> Study:
    """The :class:`Study` of a study folder, built once per process and folder state.

    The same object comes back while no file it reads has changed (same modification time and
    size); a changed, added or removed record gives a fresh one.

    Raises:
        StudyFolderError: No such folder (the message says how to make one).
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise StudyFolderError(f"{folder}: no such study folder; run `python -m hie_core.study` first")
    key, signature = folder.resolve(), _signature(folder)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    study = Study(folder)
    _CACHE[key] = (signature, study)
    return study


def clear_cache() -> None:
    """Forget every loaded study (the next :func:`load_study` reads the folder again)."""
    _CACHE.clear()
