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

The package in three parts: ``layout`` (the folder layout and finding cases), ``validate``
(reading and checking them) and ``splits`` (selection sets and folds). Every name below is
importable from ``hie_core.data``.
"""

from __future__ import annotations

from hie_core.data import layout as _layout
from hie_core.data.layout import (
    MODALITY_FOLDERS as MODALITY_FOLDERS,  # the three map folders, read by callers
)
from hie_core.data.layout import Case, DatasetError, DataWarning, discover_cases
from hie_core.data.splits import carve_validation, kfold
from hie_core.data.validate import CaseReport, ValidationReport, load_dataset, validate_cases

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


# The constants again under the package's name, with the documentation they are read by.
#: split name -> folder name in the release
SPLIT_FOLDERS: dict[str, str] = _layout.SPLIT_FOLDERS
#: Suffixes of image files; anything else in a map folder (a README, a thumbnail) is skipped with a warning.
IMAGE_SUFFIXES: tuple[str, ...] = _layout.IMAGE_SUFFIXES
