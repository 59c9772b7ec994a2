"""The seed's preprocessing: resample to a fixed grid, z-score, stack ADC and ZADC.

Every case is resampled (SimpleITK, linear for the maps) onto a grid of a fixed array shape,
by default (D, H, W) = (32, 192, 192), i.e. the seed's (192, 192, 32) in (x, y, z).

Grid convention (keep the physical extent): along each axis the new spacing is
``old_spacing * old_size / new_size`` and the outer faces of the first and last voxels stay
where they were, so the new origin (the centre of voxel 0) moves by half the spacing
difference along the image axes: ``origin + direction @ ((new_spacing - old_spacing) / 2)``.
Direction is kept. (Keeping the origin unchanged instead, as a plain ``sitk.Resample`` call
with the old origin does, shifts the image by up to half a voxel.)

Intensities: each map is z-scored with the mean and standard deviation of the whole
resampled volume, background included, as the seed did (a constant map is only centred).

Labels: binarised (``label > 0``) and resampled with ``label_interpolation``:
``"linear"`` (default) interpolates the mask as a fraction and keeps voxels at >= 0.5,
``"nearest"`` is the seed's nearest-neighbour choice. Both give binary {0, 1} labels. Taken
down and back the way predictions go (linear, >= 0.5), the linear label is closer to the
native one for lesions of about 50 voxels and more (Dice +0.01 to +0.04 when the grid is
coarsened), nearest for lesions under about 20 voxels, which thresholded interpolation
erodes; per-case Dice is dominated by the large lesions. A soft (fractional) label would be
closer still, but is not binary. Numbers: ``benchmarks/label_roundtrip.py``.

Predictions go back with :func:`to_native` / :func:`probabilities_to_native_mask`, where the
metrics are computed. :class:`PreprocessCache` stores preprocessed cases on disk so that an
epoch never re-reads or re-resamples the raw files.

The package in three parts: ``grid`` (grids, resampling and the way back), ``case`` (one case
resampled, z-scored and stacked) and ``cache`` (preprocessed cases on disk). Every name below
is importable from ``hie_core.preprocess``.
"""

from __future__ import annotations

from hie_core.preprocess import case as _case
from hie_core.preprocess.cache import PreprocessCache, default_cache_dir, file_sha256
from hie_core.preprocess.case import (
    PreprocessedCase,
    preprocess_arrays,
    preprocess_case,
    zscore,
)
from hie_core.preprocess.grid import (
    Grid,
    Interpolation,
    as_grid,
    probabilities_to_native_mask,
    resample,
    resample_to_geometry,
    resampled_geometry,
    spacing_geometry,
    to_native,
)

# The constants again under the package's name, with the documentation they are read by.
#: Version of the preprocessing output; bumping it invalidates every cache entry.
PREPROCESS_VERSION: int = _case.PREPROCESS_VERSION
#: The ways the ZADC channel is scaled. ``"volume"``, z-scored with its volume's mean and sd as
#: ADC is (the seed's), or ``"atlas"``, kept as it is (a z-score against the normative atlas
#: already); ``hie_core.preprocess.case`` says why.
ZADC_NORMS: tuple[str, ...] = _case.ZADC_NORMS

__all__ = [
    "ZADC_NORMS",
    "Grid",
    "as_grid",
    "spacing_geometry",
    "PREPROCESS_VERSION",
    "Interpolation",
    "PreprocessedCase",
    "PreprocessCache",
    "default_cache_dir",
    "file_sha256",
    "preprocess_arrays",
    "preprocess_case",
    "probabilities_to_native_mask",
    "resample",
    "resample_to_geometry",
    "resampled_geometry",
    "to_native",
    "zscore",
]
