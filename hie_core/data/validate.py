"""Reading and checking cases: every file readable, on the case's grid, finite, in its value
range, labels 0/1 (:func:`~hie_core.data.validate_cases`, :func:`~hie_core.data.load_dataset`);
one :class:`~hie_core.data.DatasetError` lists every problem, each naming its file.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hie_core.data.layout import Case, DatasetError, DataWarning, _discover
from hie_core.io import ImageGeometry, ImageReadError, read_image
from hie_core.ranges import range_problem

__all__ = ["CaseReport", "ValidationReport", "validate_cases", "load_dataset"]


@dataclass
class CaseReport:
    """What validation learned about one case (all from reading its files)."""

    case: Case
    geometry: ImageGeometry
    lesion_voxels: int | None
    brain_voxels: int

    @property
    def empty_label(self) -> bool:
        return self.lesion_voxels == 0

    @property
    def burden_percent(self) -> float | None:
        if self.lesion_voxels is None or self.brain_voxels == 0:
            return None
        return 100.0 * self.lesion_voxels / self.brain_voxels

    @property
    def lesion_volume_ml(self) -> float | None:
        if self.lesion_voxels is None:
            return None
        return self.lesion_voxels * self.geometry.voxel_volume_ml


@dataclass
class ValidationReport:
    """Per-case facts of a validated dataset, plus non-fatal notes (e.g. empty labels)."""

    cases: list[CaseReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self):
        """A pandas DataFrame with one row per case."""
        import pandas as pd

        rows = []
        for r in self.cases:
            g = r.geometry
            rows.append(
                {
                    "case_id": r.case.case_id,
                    "split": r.case.split,
                    "shape_dhw": "x".join(map(str, g.shape)),
                    "spacing_mm_dhw": "x".join(f"{s:.2f}" for s in g.spacing_mm),
                    "brain_ml": r.brain_voxels * g.voxel_volume_ml,
                    "lesion_ml": r.lesion_volume_ml,
                    "burden_percent": r.burden_percent,
                    "empty_label": r.empty_label if r.lesion_voxels is not None else None,
                }
            )
        return pd.DataFrame(rows)


def _check_map(path: Path, name: str, problems: list[str]) -> tuple[np.ndarray, ImageGeometry] | None:
    try:
        array, geometry = read_image(path)
    except ImageReadError as exc:
        problems.append(str(exc))
        return None
    if not np.issubdtype(array.dtype, np.number):
        problems.append(f"{path}: {name} has non-numeric voxel type {array.dtype}")
        return None
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        problems.append(f"{path}: {name} has {bad} non-finite voxel(s) (NaN or inf)")
    out_of_range = range_problem(name, array, path)  # an ADC map given as ZADC, or the reverse
    if out_of_range:
        problems.append(out_of_range)
    return array, geometry


def _validate_case(case: Case, problems: list[str]) -> CaseReport | None:
    n_before = len(problems)
    adc = _check_map(case.adc, "ADC", problems)
    zadc = _check_map(case.zadc, "ZADC", problems)
    label = _check_map(case.label, "label", problems) if case.label is not None else None
    if adc is None:
        return None
    reference = adc[1]
    for item, path, name in ((zadc, case.zadc, "ZADC"), (label, case.label, "label")):
        if item is not None:
            diffs = reference.grid_differences(item[1])
            if diffs:
                problems.append(
                    f"{path}: {name} is not on the ADC grid of {case.adc.name}: " + "; ".join(diffs)
                )
    lesion_voxels = None
    if label is not None:
        values = np.unique(label[0])
        extra = [v for v in values.tolist() if v not in (0, 1)]
        if extra:
            shown = ", ".join(f"{v:g}" for v in extra[:5]) + (" ..." if len(extra) > 5 else "")
            problems.append(f"{case.label}: label values must be 0 or 1, found {shown}")
        lesion_voxels = int(np.count_nonzero(label[0] == 1))
    if len(problems) > n_before:
        return None
    brain_voxels = int(np.count_nonzero(adc[0] > 0))
    _warn_suspicious(case, adc[0], zadc[0] if zadc else None, lesion_voxels, brain_voxels)
    return CaseReport(case, reference, lesion_voxels, brain_voxels)


#: A label covering more than this share of the brain is warned about.
_LESION_SHARE_WARNED = 0.9


def _warn_suspicious(case: Case, adc: np.ndarray, zadc: np.ndarray | None, lesion_voxels: int | None,
                     brain_voxels: int) -> None:  # fmt: skip
    """Warn (:class:`DataWarning`) about data that load but cannot be right: constant maps, all-lesion labels."""
    for array, path, name in ((adc, case.adc, "ADC"), (zadc, case.zadc, "ZADC")):
        if array is not None and array.size and float(array.min()) == float(array.max()):
            warnings.warn(f"{path}: the {name} map is constant ({float(array.min()):g} everywhere); a model will "
                          "predict nonsense for this case: check the file (a failed export?)", DataWarning,
                          stacklevel=3)  # fmt: skip
    if lesion_voxels and brain_voxels and lesion_voxels > _LESION_SHARE_WARNED * brain_voxels:
        warnings.warn(f"{case.label}: the lesion covers {lesion_voxels / brain_voxels:.0%} of the brain; check that "
                      "this is the lesion label and not a brain mask", DataWarning, stacklevel=3)  # fmt: skip


def _validate_into(cases: Sequence[Case], require_labels: bool, problems: list[str]) -> ValidationReport:
    report = ValidationReport()
    for case in cases:
        if require_labels and case.label is None:
            problems.append(f"{case.adc}: case {case.case_id} has no label in 3LABEL/ (needed for training)")
        case_report = _validate_case(case, problems)
        if case_report is None:
            continue
        report.cases.append(case_report)
        if case_report.empty_label:
            report.notes.append(f"{case.label}: empty label (no lesion voxels) - valid, kept")
    return report


def validate_cases(cases: Sequence[Case], require_labels: bool = False) -> ValidationReport:
    """Read every case and check it; raise one error listing every problem.

    Checks: each file readable and 3D; ADC, ZADC and label on the same grid (size,
    spacing, origin, direction); finite voxels; ADC and ZADC values in their ranges
    (:func:`hie_core.ranges.range_problem`: swapped maps are refused); label values in {0, 1}. Empty labels are
    valid (the real release has some) and are listed in ``report.notes``.

    Args:
        cases: from :func:`discover_cases`.
        require_labels: also fail on cases without a label (training needs them).

    Raises:
        DatasetError: listing every problem found, each naming its file.
    """
    if not cases:
        raise DatasetError("no cases to validate")
    problems: list[str] = []
    report = _validate_into(cases, require_labels, problems)
    if problems:
        raise DatasetError(f"{len(problems)} problem(s) in {len(cases)} case(s)", problems)
    return report


_KIND_NAMES = {"adc": "ADC", "zadc": "ZADC", "label": "label"}


def load_dataset(
    root: str | Path,
    require_labels: bool = True,
    splits: Iterable[str] | None = None,
    labels: bool = True,
) -> tuple[list[Case], ValidationReport]:
    """Find, pair and read every case of a folder; one error lists every problem.

    The usual entry point. Unlike :func:`discover_cases` followed by :func:`validate_cases`,
    problems of both kinds are collected before anything is raised: misnamed or unpaired
    files, empty split folders, and the contents of every file (unreadable, truncated, not
    3D, off the case's grid, NaN/inf voxels, ADC or ZADC values out of their
    ranges (swapped maps), label values other than 0/1), including the
    files whose partner is missing. Nothing is written.

    Args:
        root: the release root or one split folder (see :func:`discover_cases`).
        require_labels: fail on cases without a label (training needs them).
        splits: keep only these splits.
        labels: read ``3LABEL``; ``False`` ignores it (inference).

    Returns:
        ``(cases, report)``: the cases sorted by split then id, and what was read.

    Raises:
        DatasetError: every problem found, each on its own line naming its file.
    """
    if require_labels and not labels:
        raise ValueError("require_labels=True needs labels=True")
    problems: list[str] = []
    root, cases, orphans = _discover(root, splits, labels, problems)
    for kind, path in orphans:
        _check_map(path, _KIND_NAMES[kind], problems)
    report = _validate_into(cases, require_labels, problems)
    if problems:
        raise DatasetError(f"{root}: {len(problems)} problem(s) in the BONBID-HIE folder", problems)
    return cases, report
