"""Grids and resampling: the grid a case is resampled onto (:class:`~hie_core.preprocess.Grid`),
resampling with SimpleITK that keeps the physical extent, and the way back to the native grid.

The grid convention is the package's (:mod:`hie_core.preprocess`): along each axis the new
spacing is ``old_spacing * old_size / new_size`` and the outer faces of the first and last voxels
stay where they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hie_core.io import ImageGeometry

__all__ = [
    "Grid",
    "Interpolation",
    "as_grid",
    "probabilities_to_native_mask",
    "resample",
    "resample_to_geometry",
    "resampled_geometry",
    "spacing_geometry",
    "to_native",
]

Interpolation = Literal["linear", "nearest"]

_INTERPOLATIONS = ("linear", "nearest")


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")


def _check_shape(target_shape: tuple[int, ...]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in target_shape)
    if len(shape) != 3 or any(s <= 0 for s in shape) or shape != tuple(target_shape):
        raise ValueError(f"target_shape must be three positive integers (D, H, W), got {target_shape}")
    return shape  # type: ignore[return-value]


def resampled_geometry(native: ImageGeometry, target_shape: tuple[int, int, int]) -> ImageGeometry:
    """The grid of ``target_shape`` voxels that covers exactly the native grid's extent.

    Args:
        native: the source grid.
        target_shape: new array shape (D, H, W).

    Returns:
        Geometry with ``extent_mm`` equal to the native one, the same direction, and the
        origin moved by half the spacing difference so that the outer voxel faces coincide.
    """
    shape = _check_shape(target_shape)
    old = np.asarray(native.spacing_mm)
    new = old * np.asarray(native.shape) / np.asarray(shape)
    shift_xyz = (new - old)[::-1] / 2.0  # spacing is (D, H, W); physical axes are (x, y, z)
    direction = np.asarray(native.direction).reshape(3, 3)
    origin = np.asarray(native.origin_mm) + direction @ shift_xyz
    return ImageGeometry(shape, tuple(new.tolist()), tuple(origin.tolist()), native.direction)


def spacing_geometry(native: ImageGeometry, spacing_mm: Sequence[float]) -> ImageGeometry:
    """The grid at about ``spacing_mm`` (D, H, W) that covers exactly the native grid's extent.

    Each axis gets ``max(1, round(extent / spacing))`` voxels, so the realised spacing is
    within half a voxel of the one asked for and the outer voxel faces stay where they were
    (:func:`resampled_geometry`).
    """
    spacing = _check_spacing(spacing_mm)
    shape = tuple(
        max(1, int(round(n * s / t)))
        for n, s, t in zip(native.shape, native.spacing_mm, spacing, strict=True)
    )
    return resampled_geometry(native, shape)  # type: ignore[arg-type]


def _check_spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    try:
        spacing = tuple(float(s) for s in spacing_mm)
    except (TypeError, ValueError):
        spacing = ()
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be three positive numbers (D, H, W) in mm, got {spacing_mm!r}")
    return spacing  # type: ignore[return-value]


@dataclass(frozen=True)
class Grid:
    """The grid every case is resampled onto: a fixed array shape, or a fixed voxel spacing.

    Exactly one of the two is given. ``shape`` is the seed's choice (every case becomes the
    same (D, H, W) array, its spacing stretched to keep the extent); ``spacing_mm`` keeps the
    voxel size fixed instead, so arrays differ in shape from case to case (patch training and
    sliding-window prediction then handle any size).

    Attributes:
        shape: array shape (D, H, W), or None.
        spacing_mm: voxel size (D, H, W) in mm, or None.
    """

    shape: tuple[int, int, int] | None = None
    spacing_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if (self.shape is None) == (self.spacing_mm is None):
            raise ValueError(
                f"give exactly one of shape and spacing_mm, got {self.shape!r} and {self.spacing_mm!r}"
            )
        if self.shape is not None:
            object.__setattr__(self, "shape", _check_shape(self.shape))
        else:
            object.__setattr__(self, "spacing_mm", _check_spacing(self.spacing_mm))

    def geometry(self, native: ImageGeometry) -> ImageGeometry:
        """The resampled grid of a case whose native grid is ``native``."""
        if self.shape is not None:
            return resampled_geometry(native, self.shape)
        return spacing_geometry(native, self.spacing_mm)

    def describe(self) -> str:
        """``"32 × 192 × 192 voxels"`` or ``"2.5 × 1 × 1 mm voxels"`` (D × H × W), as the book prints sizes."""
        if self.shape is not None:
            return " × ".join(map(str, self.shape)) + " voxels"
        return " × ".join(f"{s:g}" for s in self.spacing_mm) + " mm voxels"

    def to_dict(self) -> dict:
        return {"shape": None if self.shape is None else list(self.shape),
                "spacing_mm": None if self.spacing_mm is None else list(self.spacing_mm)}  # fmt: skip


def as_grid(target: Grid | Sequence[int]) -> Grid:
    """A :class:`Grid` as given, or the fixed-shape grid of a (D, H, W) shape."""
    return target if isinstance(target, Grid) else Grid(shape=tuple(target))  # type: ignore[arg-type]


def resample_to_geometry(
    array: np.ndarray, source: ImageGeometry, target: ImageGeometry, interpolation: Interpolation
) -> np.ndarray:
    """Resample a (D, H, W) array from one grid onto another with SimpleITK.

    Points outside the source grid get 0. ``"linear"`` returns float32; ``"nearest"`` keeps
    the dtype (bool included). When both grids are the same, the array is returned unchanged
    (a copy, float32 for ``"linear"``).

    Args:
        array: (D, H, W) values on ``source``.
        source: the grid of ``array``.
        target: the output grid.
        interpolation: ``"linear"`` (maps, probabilities) or ``"nearest"`` (labels).

    Returns:
        Array of shape ``target.shape``.
    """
    _check_interpolation(interpolation)
    array = np.asarray(array)
    if array.shape != source.shape:
        raise ValueError(f"array shape {array.shape} does not match source geometry shape {source.shape}")
    dtype = np.float32 if interpolation == "linear" else array.dtype
    if source.same_grid(target, tol=1e-9):
        return array.astype(dtype, copy=True)
    import SimpleITK as sitk

    data = array.astype(np.float32 if interpolation == "linear" else array.dtype, copy=False)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data))
    image.SetSpacing(tuple(reversed(source.spacing_mm)))
    image.SetOrigin(source.origin_mm)
    image.SetDirection(source.direction)
    interpolator = sitk.sitkLinear if interpolation == "linear" else sitk.sitkNearestNeighbor
    out = sitk.Resample(
        image,
        list(reversed(target.shape)),
        sitk.Transform(),
        interpolator,
        target.origin_mm,
        tuple(reversed(target.spacing_mm)),
        target.direction,
        0.0,
        image.GetPixelID(),
    )
    return sitk.GetArrayFromImage(out).astype(dtype, copy=False)


def resample(
    array: np.ndarray,
    geometry: ImageGeometry,
    target_shape: tuple[int, int, int],
    interpolation: Interpolation,
) -> tuple[np.ndarray, ImageGeometry]:
    """Resample a (D, H, W) array to ``target_shape`` voxels over the same physical extent.

    Returns:
        ``(array, geometry)``: the (``target_shape``) array and its grid
        (:func:`resampled_geometry`).
    """
    target = resampled_geometry(geometry, target_shape)
    return resample_to_geometry(array, geometry, target, interpolation), target


def to_native(
    volume: np.ndarray,
    resampled: ImageGeometry,
    native: ImageGeometry,
    interpolation: Interpolation = "linear",
) -> np.ndarray:
    """Map a (D, H, W) volume from the resampled grid back onto the native grid.

    Use ``"linear"`` for probability maps and ``"nearest"`` for masks. Returns an array of
    shape ``native.shape``.
    """
    volume = np.asarray(volume)
    if volume.shape != resampled.shape:
        raise ValueError(f"volume shape {volume.shape} does not match resampled shape {resampled.shape}")
    return resample_to_geometry(volume, resampled, native, interpolation)


def probabilities_to_native_mask(
    prob: np.ndarray, resampled: ImageGeometry, native: ImageGeometry, threshold: float = 0.5
) -> np.ndarray:
    """Resample probabilities (D, H, W) linearly onto the native grid; keep ``>= threshold``.

    Returns:
        bool (D, H, W) mask of shape ``native.shape``.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return to_native(prob, resampled, native, "linear") >= threshold
