"""One case ready for the network: both maps resampled onto the grid, z-scored and stacked,
the label binarised and resampled (:func:`~hie_core.preprocess.preprocess_arrays`,
:func:`~hie_core.preprocess.preprocess_case`); see :mod:`hie_core.preprocess` for the choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hie_core.io import ImageGeometry, read_image
from hie_core.preprocess.grid import (
    Grid,
    Interpolation,
    _check_interpolation,
    as_grid,
    resample_to_geometry,
)

if TYPE_CHECKING:
    from hie_core.data import Case

__all__ = [
    "PREPROCESS_VERSION",
    "ZADC_NORMS",
    "PreprocessedCase",
    "preprocess_arrays",
    "preprocess_case",
    "zscore",
]

#: Version of the preprocessing output; bumping it invalidates every cache entry.
PREPROCESS_VERSION = 1
#: How the ZADC channel is scaled. ``"volume"``: z-scored with its volume's mean and sd, as ADC
#: is (the seed's). ``"atlas"``: kept as it is, a z-score against the normative atlas already,
#: so -2 means the same in every scan; re-scoring it per volume shrinks the lesions' values in
#: scans with a large lesion burden (their sd grows), which the quick preset's networks then
#: under-segment (benchmarks/README.md).
ZADC_NORMS = ("volume", "atlas")


def _check_zadc_norm(zadc_norm: str) -> None:
    if zadc_norm not in ZADC_NORMS:
        raise ValueError(f"zadc_norm must be one of {ZADC_NORMS}, got {zadc_norm!r}")


def zscore(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Z-score with the mean and sd of the whole volume (as the seed; background included).

    Statistics are computed in float64. A constant volume (sd 0) is only centred.

    Returns:
        ``(float32 array, mean, sd)``.
    """
    values = np.asarray(array, dtype=np.float64)
    mean, std = float(values.mean()), float(values.std())
    scale = std if std > 0 and np.isfinite(std) else 1.0
    return ((values - mean) / scale).astype(np.float32), mean, std


@dataclass(frozen=True)
class PreprocessedCase:
    """A case ready for the network.

    Attributes:
        case_id: the case's id.
        image: (2, D, H, W) float32, channel 0 z-scored ADC, channel 1 ZADC (z-scored, or as it
            is with ``zadc_norm="atlas"``).
        label: (1, D, H, W) uint8 in {0, 1}, or None for an unlabelled case.
        native_geometry: the grid of the raw files (where metrics are computed).
        geometry: the resampled grid of ``image`` and ``label``.
        intensity_mean: (ADC, ZADC) mean of the resampled maps before any z-score.
        intensity_std: (ADC, ZADC) sd of the resampled maps before the z-score.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    native_geometry: ImageGeometry
    geometry: ImageGeometry
    intensity_mean: tuple[float, float]
    intensity_std: tuple[float, float]


def _resample_label(
    label: np.ndarray, geometry: ImageGeometry, target: ImageGeometry, interpolation: Interpolation
) -> np.ndarray:
    mask = np.asarray(label) > 0
    if interpolation == "nearest":
        return resample_to_geometry(mask.astype(np.uint8), geometry, target, "nearest")
    return (resample_to_geometry(mask, geometry, target, "linear") >= 0.5).astype(np.uint8)


def preprocess_arrays(
    adc: np.ndarray,
    zadc: np.ndarray,
    geometry: ImageGeometry,
    label: np.ndarray | None,
    target_shape: Grid | tuple[int, int, int],
    zadc_norm: str,
    label_interpolation: Interpolation = "linear",
    case_id: str = "",
) -> PreprocessedCase:
    """Resample, z-score and stack one case given as arrays on one native grid.

    Args:
        adc: (D, H, W) ADC map in 10^-6 mm^2/s.
        zadc: (D, H, W) ZADC map, same grid.
        geometry: the native grid of all three arrays.
        label: (D, H, W) lesion mask (nonzero = lesion), same grid, or None.
        target_shape: the output grid: a :class:`Grid`, or an array shape (D, H, W) (a run's
            ``target_shape`` or ``target_spacing_mm``).
        zadc_norm: ``"volume"`` (ZADC z-scored like ADC, the seed's) or ``"atlas"`` (ZADC as
            it is); see :data:`ZADC_NORMS`.
        label_interpolation: ``"linear"`` (fraction >= 0.5) or ``"nearest"`` (the seed's).
        case_id: carried into the result.

    Returns:
        The :class:`PreprocessedCase`.
    """
    _check_interpolation(label_interpolation)
    _check_zadc_norm(zadc_norm)
    for name, arr in (("adc", adc), ("zadc", zadc), ("label", label)):
        if arr is not None and np.shape(arr) != geometry.shape:
            raise ValueError(f"{name} shape {np.shape(arr)} does not match geometry shape {geometry.shape}")
    target = as_grid(target_shape).geometry(geometry)
    channels, means, stds = [], [], []
    for name, volume in (("adc", adc), ("zadc", zadc)):
        resampled = resample_to_geometry(volume, geometry, target, "linear")
        normalised, mean, std = zscore(resampled)
        if name == "zadc" and zadc_norm == "atlas":
            normalised = resampled.astype(np.float32, copy=False)
        channels.append(normalised)
        means.append(mean)
        stds.append(std)
    resampled_label = None
    if label is not None:
        resampled_label = _resample_label(label, geometry, target, label_interpolation)[None]
    return PreprocessedCase(
        case_id=case_id,
        image=np.stack(channels).astype(np.float32, copy=False),
        label=resampled_label,
        native_geometry=geometry,
        geometry=target,
        intensity_mean=(means[0], means[1]),
        intensity_std=(stds[0], stds[1]),
    )


def preprocess_case(
    case: Case,
    target_shape: Grid | tuple[int, int, int],
    zadc_norm: str,
    label_interpolation: Interpolation = "linear",
) -> PreprocessedCase:
    """Read a case's ADC, ZADC (and label) files and preprocess them (:func:`preprocess_arrays`).

    Raises:
        hie_core.io.ImageReadError: a file cannot be read.
        ValueError: the ZADC or label grid differs from the ADC grid.
    """
    adc, geometry = read_image(case.adc)
    arrays = {}
    for name in ("zadc", "label"):
        path = getattr(case, name)
        if path is None:
            arrays[name] = None
            continue
        arrays[name], other = read_image(path)
        if not geometry.same_grid(other):
            diff = "; ".join(geometry.grid_differences(other))
            raise ValueError(f"{case.case_id}: {name} grid differs from the ADC grid ({path}: {diff})")
    return preprocess_arrays(
        adc,
        arrays["zadc"],
        geometry,
        arrays["label"],
        target_shape,
        zadc_norm,
        label_interpolation,
        case.case_id,
    )
