"""The BONBID-HIE folder layout and finding cases in it (file names only; nothing is read).

A release holds split folders ``BONBID2023_Train``, ``BONBID2023_Val`` and ``BONBID2023_Test``,
each with ``1ADC_ss/``, ``2Z_ADC/`` and (except for inference-only data) ``3LABEL/``;
:func:`~hie_core.data.discover_cases` pairs the files by case id (see :mod:`hie_core.data`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hie_core.errors import ProblemsError

__all__ = [
    "SPLIT_FOLDERS",
    "MODALITY_FOLDERS",
    "IMAGE_SUFFIXES",
    "Case",
    "DatasetError",
    "DataWarning",
    "discover_cases",
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
