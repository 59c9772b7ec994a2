"""Finding, validating and splitting BONBID-HIE cases.

A BONBID-HIE release (Zenodo record 10602767) holds split folders
``BONBID2023_Train``, ``BONBID2023_Val`` and ``BONBID2023_Test``, each laid out as::

    1ADC_ss/<id>-ADC_ss.mha
    2Z_ADC/Zmap_<id>-ADC_smooth2mm_clipped10.mha
    3LABEL/<id>_lesion.mha            (absent for inference-only data)

:func:`discover_cases` accepts the release root or a single split folder and pairs the
files by case id. :func:`load_dataset`, the usual entry point, also reads every file and
raises one :class:`DatasetError` listing every problem of both kinds (names and pairing,
file contents), each naming its file; nothing is ever written. :func:`carve_validation` and
:func:`kfold` make seeded, deterministic selection sets out of the training split, so
that reported validation and test cases are never used for model selection.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hie_core.errors import ProblemsError
from hie_core.io import ImageGeometry, ImageReadError, read_image
from hie_core.ranges import range_problem

__all__ = [
    "SPLIT_FOLDERS",
    "Case",
    "CaseReport",
    "DatasetError",
    "ValidationReport",
    "discover_cases",
    "validate_cases",
    "load_dataset",
    "carve_validation",
    "kfold",
    "DataWarning",
    "IMAGE_SUFFIXES",
]

#: split name -> folder name in the release
SPLIT_FOLDERS = {"train": "BONBID2023_Train", "val": "BONBID2023_Val", "test": "BONBID2023_Test"}
MODALITY_FOLDERS = ("1ADC_ss", "2Z_ADC", "3LABEL")
_PATTERNS = {
    "adc": ("1ADC_ss", re.compile(r"^(?P<id>.+)-ADC_ss\.mha$")),
    "zadc": ("2Z_ADC", re.compile(r"^Zmap_(?P<id>.+)-ADC_smooth2mm_clipped10\.mha$")),
    "label": ("3LABEL", re.compile(r"^(?P<id>.+)_lesion\.mha$")),
}


#: A file name of each kind, as the release names them.
_EXAMPLES = {"adc": "MGHNICU_010-VISIT_01-ADC_ss.mha", "zadc": "Zmap_MGHNICU_010-VISIT_01-ADC_smooth2mm_clipped10.mha",
             "label": "MGHNICU_010-VISIT_01_lesion.mha"}  # fmt: skip


class DatasetError(ProblemsError):
    """A data folder is not usable. ``str(err)`` lists every problem, each with its file."""


class DataWarning(UserWarning):
    """Data that load but look wrong (a constant map, a label covering the brain, a stray file)."""


#: Suffixes of image files; anything else in a map folder (a README, a thumbnail) is skipped with a warning.
IMAGE_SUFFIXES = (".mha", ".mhd", ".raw", ".nrrd", ".nii", ".nii.gz")


@dataclass(frozen=True)
class Case:
    """One patient visit: paths to its ADC map, ZADC map and (optional) lesion label.

    Attributes:
        case_id: e.g. ``MGHNICU_010-VISIT_01``.
        split: ``"train"``, ``"val"``, ``"test"``, or ``None`` for a folder without splits.
        adc, zadc: paths of the two input maps.
        label: path of the lesion mask, or ``None`` (inference).
    """

    case_id: str
    split: str | None
    adc: Path
    zadc: Path
    label: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.adc, self.zadc, self.label) if p is not None)


def _visible_files(folder: Path, problems: list[str]) -> list[Path]:
    """The files of ``folder`` (none if it is absent), hidden ones skipped; unreadable entries are problems."""
    if not folder.is_dir():
        return []
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        problems.append(f"{folder}: cannot list the folder ({exc.strerror or exc})")
        return []
    for path in entries:
        if path.is_symlink() and not path.exists():
            problems.append(f"{path}: broken link (its target does not exist)")
    return [p for p in entries if p.is_file()]


def _split_folders(root: Path) -> list[tuple[str | None, Path]]:
    """The (split, folder) pairs under ``root``: the release root or one split folder."""
    found = [(split, root / name) for split, name in SPLIT_FOLDERS.items() if (root / name).is_dir()]
    if found:
        return found
    if any((root / m).is_dir() for m in MODALITY_FOLDERS):
        split = next((s for s, name in SPLIT_FOLDERS.items() if root.name == name), None)
        return [(split, root)]
    return []


#: an input file whose case has no partner: (kind "adc"/"zadc"/"label", path)
_Orphan = tuple[str, Path]


def _discover_split(
    split: str | None, folder: Path, labels: bool, problems: list[str]
) -> tuple[list[Case], list[_Orphan]]:
    """Pair the files of one split folder; misnamed and unpaired files are problems."""
    paths: dict[str, dict[str, Path]] = {}
    for key, (sub, pattern) in _PATTERNS.items():
        if key == "label" and not labels:
            continue
        files = _visible_files(folder / sub, problems)
        stray = [p for p in files if not p.name.lower().endswith(IMAGE_SUFFIXES)]
        for path in stray:
            warnings.warn(
                f"{path}: not an image file (BONBID-HIE maps are .mha); skipped", DataWarning, stacklevel=2
            )
        nifti = [p for p in files if p.name.lower().endswith((".nii", ".nii.gz"))]
        if nifti:
            problems.append(f"{folder / sub}: holds {len(nifti)} NIfTI file(s) (.nii/.nii.gz), but the BONBID-HIE "
                            f"release is MetaImage .mha named like {_EXAMPLES[key]}; convert them (SimpleITK "
                            "ReadImage then WriteImage to .mha) and name them so")  # fmt: skip
        for path in (p for p in files if p not in stray and p not in nifti):
            match = pattern.match(path.name)
            if match is None:
                problems.append(f"{path}: file name does not follow the BONBID-HIE pattern for {sub}/ "
                                f"(e.g. {_EXAMPLES[key]})")  # fmt: skip
                continue
            paths.setdefault(match["id"], {})[key] = path
    cases: list[Case] = []
    orphans: list[_Orphan] = []
    for case_id in sorted(paths):
        found = paths[case_id]
        missing = [k for k in ("adc", "zadc") if k not in found]
        for key in missing:
            have = next(iter(found.values()))
            problems.append(
                f"{have}: missing partner file in {folder / _PATTERNS[key][0]} for case {case_id}"
            )
        if missing:
            orphans.extend(found.items())
        else:
            cases.append(Case(case_id, split, found["adc"], found["zadc"], found.get("label")))
    return cases, orphans


def _discover(
    root: str | Path, splits: Iterable[str] | None, labels: bool, problems: list[str]
) -> tuple[Path, list[Case], list[_Orphan]]:
    """Discovery that collects problems; raises only when the folder as a whole is unusable."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder not found")
    if not any(root.iterdir()):
        raise DatasetError(f"{root}: data folder is empty")
    folders = _split_folders(root)
    if not folders:
        expected = ", ".join(list(SPLIT_FOLDERS.values()) + list(MODALITY_FOLDERS))
        raise DatasetError(f"{root}: not a BONBID-HIE folder (expected sub-folders such as {expected})")
    if splits is not None:
        wanted = set(splits)
        unknown = wanted - set(SPLIT_FOLDERS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; valid: {sorted(SPLIT_FOLDERS)}")
        folders = [(s, f) for s, f in folders if s in wanted or s is None]
    cases: list[Case] = []
    orphans: list[_Orphan] = []
    for split, folder in folders:
        n_before = len(problems)
        found, lone = _discover_split(split, folder, labels, problems)
        if not found and not lone and len(problems) == n_before:
            problems.append(f"{folder}: no cases found in {folder / '1ADC_ss'}")
        cases.extend(found)
        orphans.extend(lone)
    return root, cases, orphans


def discover_cases(root: str | Path, splits: Iterable[str] | None = None, labels: bool = True) -> list[Case]:
    """Find and pair the cases of a BONBID-HIE folder (file names only; nothing is read).

    Args:
        root: the release root (holding ``BONBID2023_Train`` ...) or one split folder
            (holding ``1ADC_ss``, ``2Z_ADC`` and optionally ``3LABEL``).
        splits: keep only these splits (``"train"``, ``"val"``, ``"test"``).
        labels: look at ``3LABEL``; ``False`` ignores it (inference needs no labels).

    Returns:
        Cases sorted by split then id. Labels are ``None`` where ``3LABEL`` has none.

    Raises:
        DatasetError: the folder does not exist, is empty, is not a BONBID-HIE layout,
            or has unpaired / misnamed files (all listed, each with its path). Use
            :func:`load_dataset` to get these and the files' content problems in one error.
    """
    problems: list[str] = []
    root, cases, _ = _discover(root, splits, labels, problems)
    if problems:
        raise DatasetError(f"{root}: {len(problems)} problem(s) in the BONBID-HIE folder", problems)
    return cases


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


def _seeded_order(cases: Sequence[Case], seed: int) -> list[Case]:
    ordered = sorted(cases, key=lambda c: c.case_id)
    rng = np.random.default_rng(seed)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def carve_validation(
    cases: Sequence[Case], fraction: float = 0.2, seed: int = 0, n_val: int | None = None
) -> tuple[list[Case], list[Case]]:
    """Split training cases into (fit, selection) sets for early stopping.

    The result depends only on the case ids and the seed, not on the input order.

    Args:
        cases: the training cases (never pass reported validation or test cases).
        fraction: share of cases for the selection set (ignored if ``n_val`` is given).
        seed: the split seed.
        n_val: exact number of selection cases.

    Returns:
        ``(fit_cases, selection_cases)``, each sorted by id.
    """
    if n_val is None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        n_val = max(1, round(fraction * len(cases)))
    if not 0 < n_val < len(cases):
        raise ValueError(f"cannot carve {n_val} selection case(s) out of {len(cases)} training case(s)")
    order = _seeded_order(cases, seed)
    by_id = lambda cs: sorted(cs, key=lambda c: c.case_id)  # noqa: E731
    return by_id(order[n_val:]), by_id(order[:n_val])


def kfold(
    cases: Sequence[Case], k: int = 5, seed: int = 0, strata: Mapping[str, str] | None = None
) -> list[tuple[list[Case], list[Case]]]:
    """Seeded k-fold partition of training cases: ``k`` (fit, selection) pairs.

    Every case is in exactly one selection set; fold sizes differ by at most one. The result
    depends only on the case ids, ``seed`` and ``strata``, not on the input order.

    Args:
        cases: the cases to partition.
        k: the number of folds (2 to ``len(cases)``).
        seed: the partition seed.
        strata: optional case id -> stratum (e.g. the lesion-burden stratum): each stratum's
            cases are then spread over the folds as evenly as the fold sizes allow.
    """
    if not 2 <= k <= len(cases):
        raise ValueError(f"k must be between 2 and the number of cases ({len(cases)}), got {k}")
    order = _seeded_order(cases, seed)
    if strata is not None:
        missing = [c.case_id for c in cases if c.case_id not in strata]
        if missing:
            raise ValueError(f"strata has no stratum for case(s) {missing[:3]}")
        names = sorted({strata[c.case_id] for c in cases})
        order = [c for name in names for c in order if strata[c.case_id] == name]  # dealt stratum by stratum
    folds = [order[i::k] for i in range(k)]
    out = []
    for i in range(k):
        fit = [c for j, f in enumerate(folds) if j != i for c in f]
        out.append((sorted(fit, key=lambda c: c.case_id), sorted(folds[i], key=lambda c: c.case_id)))
    return out
