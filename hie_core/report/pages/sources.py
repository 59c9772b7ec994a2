"""Where a page's numbers come from: the one data-source label and the page banner.

A data folder is synthetic when it carries the generator's manifest
(:func:`hie_core.synthetic.is_synthetic_dir`), however it was passed: empty ``data_dir`` or
the generated folder's path. Every page, table note and figure title takes its label from
:class:`DataSource`, so Intro, Data, Methods, Results and the experiment pages never disagree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from hie_core.report.analysis.study_model import load_study
from hie_core.report.viewers.display import admonition

__all__ = [
    "SYNTHETIC_LABEL",
    "DataSource",
    "banner",
    "data_source",
    "source_line",
    "source_of_folder",
    "source_of_run",
    "study_dir_for",
]

SYNTHETIC_LABEL = "SYNTHETIC BONBID-like data (hie_core.synthetic; no patients)"


@dataclass(frozen=True)
class DataSource:
    """A data folder and whether it is synthetic."""

    folder: Path
    synthetic: bool

    @property
    def label(self) -> str:
        """For titles and notes: the synthetic label, or "BONBID-HIE data (<folder>)"."""
        return SYNTHETIC_LABEL if self.synthetic else f"BONBID-HIE data ({self.folder})"

    @property
    def short(self) -> str:
        """ "SYNTHETIC data" or "BONBID-HIE data" (for figure titles)."""
        return "SYNTHETIC data" if self.synthetic else "BONBID-HIE data"


def source_of_folder(folder: str | Path) -> DataSource:
    """The source of a data folder (synthetic if it holds the generator's manifest)."""
    from hie_core.synthetic import is_synthetic_dir

    folder = Path(folder).expanduser()
    return DataSource(folder, is_synthetic_dir(folder))


def source_of_run(config_json: dict) -> DataSource:
    """The source of a run folder's ``config.json``: its resolved data folder.

    If that folder is gone, the flag the run recorded decides.
    """
    folder = Path(config_json.get("data_dir_resolved") or config_json.get("config", {}).get("data_dir", ""))
    if folder.is_dir():
        return source_of_folder(folder)
    return DataSource(folder, bool(config_json.get("synthetic")))


def source_line(source: DataSource, preset: str | None = None, device: str | list | None = None) -> str:
    """ "<label>; preset <p>; <device>": the one-line provenance of a table or figure."""
    parts = [source.label]
    if preset:
        parts.append(f"preset {preset}")
    if device:
        parts.append(", ".join(device) if isinstance(device, list) else str(device))
    return "; ".join(parts)


def study_dir_for(study_dir: str = "", preset: str = "auto") -> Path:
    """``study_dir``, or ``<runs>/<preset>`` when empty (``runs`` under the project root, or
    ``$HIE_RUNS_DIR``: :func:`hie_core.run_folder.runs_root`)."""
    if study_dir:
        return Path(study_dir).expanduser()
    import torch

    from hie_core.config import resolve_preset_name
    from hie_core.run_folder import runs_root

    return runs_root() / resolve_preset_name(preset, "cuda" if torch.cuda.is_available() else "cpu")


def data_source(study_dir: str = "", data_dir: str = "") -> DataSource:
    """The data of a Data or Methods page.

    Args:
        study_dir: A study folder; the data folder its runs used wins if given
            (:attr:`hie_core.report.analysis.study_model.Study.data_dir`: ``results/study.json``, else the
            first trained run's ``config.json``).
        data_dir: A BONBID-HIE folder; ``""`` = the small synthetic set (generated and cached
            under ``$HIE_CACHE_DIR`` on first use).

    Raises:
        StudyFolderError: ``study_dir`` has no results and no finished run.
        FileNotFoundError: The data folder does not exist.
    """
    if study_dir:
        folder = Path(load_study(study_dir).data_dir)
    else:
        from hie_core.config import preset_values
        from hie_core.run_folder import resolve_data_dir

        folder = resolve_data_dir({**preset_values("quick", "cpu"), "data_dir": data_dir})
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found (named by {study_dir or 'data_dir'})")
    return source_of_folder(folder)


def banner(source: DataSource, details: str = "", missing: list[str] | None = None) -> None:
    """Display the page-top note naming the data source (a warning box when synthetic).

    Args:
        source: The data source.
        details: More provenance (preset, seeds, device, splits), one sentence.
        missing: Runs that did not finish and are absent from the page.
    """
    if source.synthetic:
        title = "Synthetic data"
        text = ("Every number and image on this page comes from the <b>synthetic BONBID-like dataset</b> generated "
                "by <code>hie_core.synthetic</code> (same layout, sizes and lesion-burden strata as BONBID-HIE, no "
                "patient data). They test the pipeline; they say nothing about patients.")  # fmt: skip
    else:
        title, text = "Data source", f"Numbers and images on this page come from {source.label}."
    if details:
        text += f" {html.escape(details)}"
    if missing:
        text += f" Runs that did not finish and are absent here: {html.escape(', '.join(missing))}."
    admonition(title, text, "warning" if source.synthetic else "note")
