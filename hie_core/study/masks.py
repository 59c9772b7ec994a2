"""Outside predictions checked against the reference data (see :mod:`hie_core.study.external`).

:func:`check_predictions` finds the masks of one split in a folder (the folder itself, its
``3LABEL/``, or its ``<split>/`` subfolders), reads each, and raises one
:class:`ExternalPredictionError` listing every problem with its file and what to do: a missing
case, an unreadable or misnamed file, a mask off the reference's grid (size, spacing, origin,
direction), values other than 0 and 1. A mask of a case in no split is warned about
(:class:`ExternalPredictionWarning`) and skipped.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hie_core.data import SPLIT_FOLDERS, Case
from hie_core.errors import ProblemsError
from hie_core.io import ImageReadError, read_geometry, read_image
from hie_core.outputs import resolve_path

__all__ = [
    "MASK_SUFFIXES",
    "ExternalMask",
    "ExternalPredictionError",
    "ExternalPredictionWarning",
    "check_predictions",
]

#: File types a predicted mask may have (MetaImage as in the release, NIfTI, NRRD).
MASK_SUFFIXES = (".mha", ".nii.gz", ".nii", ".nrrd")


_MASK_NAME = re.compile(r"^(?P<id>.+)_lesion(?P<suffix>\.mha|\.nii\.gz|\.nii|\.nrrd)$", re.IGNORECASE)


#: Grid tolerance, relative and absolute (NIfTI stores its affine in float32).
_GRID_TOL = 1e-3


_ON_GRID = ("resample it onto the reference image with nearest-neighbour interpolation (SimpleITK "
            "Resample with the reference as reference image), or predict on the native scan")  # fmt: skip


class ExternalPredictionError(ProblemsError):
    """A folder of outside predictions cannot be scored; ``str(err)`` lists every problem with its file."""


class ExternalPredictionWarning(UserWarning):
    """Masks that are not scored because their case id is in no split of the data."""


@dataclass(frozen=True)
class ExternalMask:
    """One checked predicted mask and the reference case it is scored against.

    Attributes:
        case: the reference case (its label is the reference, its ADC gives the brain for the burden).
        path: the predicted mask file (0/1 on the case's native grid).
    """

    case: Case
    path: Path


def _masks_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and _MASK_NAME.match(p.name))


def _mask_dirs(folder: Path, splits: Sequence[str]) -> list[Path]:
    """The folders holding the masks to score, in this order of preference: ``folder`` itself, its ``3LABEL/``,
    or (a run's ``predictions/``) its subfolders named after the scored splits.

    A folder holding masks in more than one of these places gets a notice
    (:class:`ExternalPredictionWarning`) saying which were scored and how to score the others.
    """
    if not folder.is_dir():
        raise ExternalPredictionError(f"{folder}: no such folder of predicted masks; give the folder that holds "
                                      "<case_id>_lesion.mha files")  # fmt: skip
    places = {"": folder, "3LABEL/": folder / "3LABEL",
              **{f"{s}/": folder / s for s in (*SPLIT_FOLDERS, "cv")}}  # fmt: skip
    found = {name: len(_masks_in(path)) for name, path in places.items()}
    held = [name for name, n in found.items() if n]
    if not held:
        return [folder]
    chosen = held[0] if held[0] in ("", "3LABEL/") else None
    dirs = [places[chosen]] if chosen is not None else [places[f"{s}/"] for s in splits if found.get(f"{s}/")]
    dirs = dirs or [folder]
    skipped = [name for name in held if places[name] not in dirs]
    if chosen is not None and skipped:
        where = "the folder itself" if chosen == "" else chosen
        others = ", ".join(f"{name} ({found[name]})" for name in skipped)
        warnings.warn(f"{folder}: scoring the {found[chosen]} mask(s) in {where}, the first place masks are "
                      f"looked for; not read: {others}; to score those, give {folder / skipped[0].rstrip('/')}",
                      ExternalPredictionWarning, stacklevel=3)  # fmt: skip
    return dirs


def _find_masks(mask_dirs: Sequence[Path], problems: list[str]) -> dict[str, Path]:
    """Case id -> mask file; misnamed image files and two masks of one case are problems."""
    found: dict[str, list[Path]] = {}
    for mask_dir in mask_dirs:
        for path in sorted(p for p in mask_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            match = _MASK_NAME.match(path.name)
            if match:
                found.setdefault(match["id"], []).append(path)
            elif path.name.lower().endswith(MASK_SUFFIXES + (".mhd", ".nhdr")):
                problems.append(f"{path}: not named like a predicted mask; name it <case_id>_lesion.mha, e.g. "
                                "MGHNICU_010-VISIT_01_lesion.mha (the name of the case's label in the release)")  # fmt: skip
    for case_id, paths in found.items():
        if len(paths) > 1:
            problems.append(f"{paths[0]}: case {case_id} has {len(paths)} masks ({', '.join(str(p) for p in paths)}); "
                            "keep one")  # fmt: skip
    return {case_id: paths[0] for case_id, paths in found.items()}


def _value_problem(path: Path, array: np.ndarray) -> str | None:
    """Why a mask's voxel values are not 0/1 (with what to do), or None."""
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return f"{path}: voxel type {array.dtype} is not numeric; save the mask as uint8 0/1"
    if array.dtype == bool:
        return None
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        return f"{path}: {bad} voxel(s) are NaN or infinite; a mask holds 0 and 1 only"
    values = np.unique(array)
    extra = values[(values != 0) & (values != 1)]
    if not extra.size:
        return None
    shown = ", ".join(f"{v:g}" for v in extra[:4].tolist()) + (" ..." if extra.size > 4 else "")
    if values.min() >= 0 and values.max() <= 1:
        return (f"{path}: looks like a probability map (values between 0 and 1, e.g. {shown}), and only binary masks "
                "are scored; threshold it where it was made (e.g. probability > 0.5) and save 0/1 as uint8")  # fmt: skip
    if extra.size == 1 and values.min() >= 0 and 1 not in values:
        return (f"{path}: the lesion is {shown}, and a mask must be 0/1; save (mask > 0) as uint8")  # fmt: skip
    return (f"{path}: holds values other than 0 and 1 ({shown}); a multi-label or signed map is not a lesion mask: "
            "save the lesion as 1 and everything else as 0 (uint8)")  # fmt: skip


def _check_mask(case: Case, path: Path, problems: list[str]) -> bool:
    try:
        array, geometry = read_image(path)
    except ImageReadError as exc:
        problems.append(str(exc))
        return False
    reference = case.label or case.adc
    try:
        diffs = read_geometry(reference).grid_differences(geometry, tol=_GRID_TOL)
    except ImageReadError as exc:  # the reference data were validated when loaded; a file replaced meanwhile
        problems.append(str(exc))
        return False
    if diffs:
        problems.append(
            f"{path}: not on the grid of the reference {reference.name}: {'; '.join(diffs)}; {_ON_GRID}"
        )
        return False
    problem = _value_problem(path, array)
    if problem:
        problems.append(problem)
    return problem is None


def check_predictions(
    folder: str | Path, cases: Sequence[Case], known_ids: Iterable[str] = ()
) -> list[ExternalMask]:
    """Check a folder of predicted masks against the reference cases to score; every problem at once.

    Args:
        folder: the masks, ``<case_id>_lesion.mha`` (or ``.nii.gz``, ``.nii``, ``.nrrd``), in the
            folder, its ``3LABEL/`` subfolder, or its ``<split>/`` subfolders (a run's
            ``predictions/``), looked for in that order (a notice names the places not read). Only read.
        cases: the reference cases to score (each with a label), e.g. one split of
            :func:`hie_core.data.load_dataset`.
        known_ids: case ids of the data that are not scored (other splits): their masks are skipped
            silently; a mask of any other id is warned about (:class:`ExternalPredictionWarning`).

    Returns:
        One :class:`ExternalMask` per case, in the order of ``cases``.

    Raises:
        ExternalPredictionError: every problem found, one per line, each naming its file and what to do.
    """
    folder = resolve_path(folder)
    mask_dirs = _mask_dirs(folder, list(dict.fromkeys(c.split for c in cases if c.split)))
    mask_dir = mask_dirs[0]
    problems: list[str] = []
    masks = _find_masks(mask_dirs, problems)
    wanted = {c.case_id for c in cases}
    unknown = sorted(set(masks) - wanted - set(known_ids))
    out = []
    for case in cases:
        path = masks.get(case.case_id)
        if case.label is None:
            problems.append(f"{case.adc}: case {case.case_id} has no reference label in 3LABEL/, so it cannot be "
                            "scored; score against data with labels")  # fmt: skip
        elif path is None:
            where = next((d for d in mask_dirs if d.name == case.split), mask_dir)
            problems.append(f"{where / (case.case_id + '_lesion.mha')}: missing: case {case.case_id} of the "
                            f"{case.split or 'scored'} cases has no predicted mask; predict it (an empty mask is "
                            "a valid prediction)")  # fmt: skip
        elif _check_mask(case, path, problems):
            out.append(ExternalMask(case, path))
    if unknown:
        shown = ", ".join(masks[i].name for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        note = f"{len(unknown)} mask(s) name no case of the data and are not scored: {shown}"
        if problems:
            problems.append(f"{mask_dir}: {note}; check their case ids")
        else:
            warnings.warn(f"{mask_dir}: {note}", ExternalPredictionWarning, stacklevel=2)
    if problems:
        raise ExternalPredictionError(f"{folder}: {len(problems)} problem(s) with the predicted masks; fix them and "
                                      "run again (nothing was scored or written)", problems)  # fmt: skip
    return out
