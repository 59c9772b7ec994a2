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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hie_core.io import ImageGeometry, atomic_write_bytes, read_image

if TYPE_CHECKING:
    from hie_core.data import Case

__all__ = [
    "DEFAULT_TARGET_SHAPE",
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

Interpolation = Literal["linear", "nearest"]

#: Seed's (x, y, z) = (192, 192, 32) as an array shape (D, H, W).
DEFAULT_TARGET_SHAPE: tuple[int, int, int] = (32, 192, 192)
#: Version of the preprocessing output; bumping it invalidates every cache entry.
PREPROCESS_VERSION = 1
_INTERPOLATIONS = ("linear", "nearest")
#: How the ZADC channel is scaled. ``"volume"``: z-scored with its volume's mean and sd, as ADC
#: is (the seed's). ``"atlas"``: kept as it is, a z-score against the normative atlas already,
#: so -2 means the same in every scan; re-scoring it per volume shrinks the lesions' values in
#: scans with a large lesion burden (their sd grows), which the quick preset's networks then
#: under-segment (benchmarks/README.md).
ZADC_NORMS = ("volume", "atlas")


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")


def _check_zadc_norm(zadc_norm: str) -> None:
    if zadc_norm not in ZADC_NORMS:
        raise ValueError(f"zadc_norm must be one of {ZADC_NORMS}, got {zadc_norm!r}")


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
        """``"32 x 192 x 192 voxels"`` or ``"2.5 x 1 x 1 mm voxels"`` (D x H x W)."""
        if self.shape is not None:
            return " x ".join(map(str, self.shape)) + " voxels"
        return " x ".join(f"{s:g}" for s in self.spacing_mm) + " mm voxels"

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
    label: np.ndarray | None = None,
    target_shape: Grid | tuple[int, int, int] = DEFAULT_TARGET_SHAPE,
    label_interpolation: Interpolation = "linear",
    case_id: str = "",
    zadc_norm: str = "volume",
) -> PreprocessedCase:
    """Resample, z-score and stack one case given as arrays on one native grid.

    Args:
        adc: (D, H, W) ADC map in 10^-6 mm^2/s.
        zadc: (D, H, W) ZADC map, same grid.
        geometry: the native grid of all three arrays.
        label: optional (D, H, W) lesion mask (nonzero = lesion), same grid.
        target_shape: the output grid: a :class:`Grid`, or an array shape (D, H, W).
        label_interpolation: ``"linear"`` (fraction >= 0.5) or ``"nearest"`` (the seed's).
        case_id: carried into the result.
        zadc_norm: ``"volume"`` (ZADC z-scored like ADC, the seed's) or ``"atlas"`` (ZADC as
            it is); see :data:`ZADC_NORMS`.

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
    target_shape: Grid | tuple[int, int, int] = DEFAULT_TARGET_SHAPE,
    label_interpolation: Interpolation = "linear",
    zadc_norm: str = "volume",
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
        label_interpolation,
        case.case_id,
        zadc_norm,
    )


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


def default_cache_dir() -> Path:
    """``$HIE_CACHE_DIR/preprocessed``, or ``~/.cache/hie_core/preprocessed``."""
    root = os.environ.get("HIE_CACHE_DIR") or Path.home() / ".cache" / "hie_core"
    return Path(root).expanduser() / "preprocessed"


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class PreprocessCache:
    """Preprocessed cases on disk, keyed by the inputs' contents and the parameters.

    An entry is a compressed ``.npz`` named ``<case_id>-<key>.npz`` in ``cache_dir``,
    written atomically. The key is a SHA-256 of the three input files' SHA-256s, the target
    shape, the interpolation modes, the ZADC scaling and :data:`PREPROCESS_VERSION`, so it changes when an
    input or a parameter does. File hashes are remembered per (path, size, mtime_ns), in
    memory and under ``cache_dir/file_hashes``, so unchanged files are not re-hashed. An
    unreadable entry is recomputed, and an unwritable cache skipped, with a warning.
    Nothing is written next to the data. Stale entries are not deleted (remove the folder).

    Args:
        cache_dir: folder for the entries (default :func:`default_cache_dir`).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._hashes: dict[tuple[str, int, int], str] = {}

    def file_hash(self, path: str | os.PathLike) -> str:
        """SHA-256 of a file, re-hashed only when its path, size or mtime changes."""
        resolved = Path(path).resolve()
        stat = resolved.stat()
        stamp = (str(resolved), stat.st_size, stat.st_mtime_ns)
        if stamp in self._hashes:
            return self._hashes[stamp]
        record = self.cache_dir / "file_hashes" / hashlib.sha256(repr(stamp).encode()).hexdigest()
        try:
            value = record.read_text().strip()
        except OSError:
            value = ""
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            value = file_sha256(resolved)
            _try_write(record, value.encode())
        self._hashes[stamp] = value
        return value

    def key(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int],
        label_interpolation: Interpolation,
        zadc_norm: str = "volume",
    ) -> str:
        """The entry key of ``case`` under these parameters (hex SHA-256)."""
        grid = as_grid(target_shape)
        params = {
            "version": PREPROCESS_VERSION,
            "target_shape": None if grid.shape is None else list(grid.shape),
            "target_spacing_mm": grid.spacing_mm and list(grid.spacing_mm),
            "map_interpolation": "linear",
            "label_interpolation": label_interpolation,
            "normalisation": "zscore-whole-volume" if zadc_norm == "volume" else "adc-zscore-zadc-atlas",
            "adc": self.file_hash(case.adc),
            "zadc": self.file_hash(case.zadc),
            "label": None if case.label is None else self.file_hash(case.label),
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def path(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int],
        label_interpolation: Interpolation,
        zadc_norm: str = "volume",
    ) -> Path:
        """Where the entry of ``case`` under these parameters lives."""
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", case.case_id)
        return (
            self.cache_dir
            / f"{safe_id}-{self.key(case, target_shape, label_interpolation, zadc_norm)[:24]}.npz"
        )

    def get(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int] = DEFAULT_TARGET_SHAPE,
        label_interpolation: Interpolation = "linear",
        zadc_norm: str = "volume",
    ) -> PreprocessedCase:
        """The preprocessed case: from the cache, or computed, stored and returned."""
        _check_interpolation(label_interpolation)
        _check_zadc_norm(zadc_norm)
        entry = self.path(case, target_shape, label_interpolation, zadc_norm)
        if entry.is_file():
            try:
                return _load_entry(entry, case.case_id, as_grid(target_shape).shape)
            except Exception as exc:  # corrupt/truncated/foreign file: recompute
                warnings.warn(f"{entry}: unreadable cache entry, recomputing ({exc})", stacklevel=2)
        result = preprocess_case(case, target_shape, label_interpolation, zadc_norm)
        _try_write(entry, _dump_entry(result))
        return result


def _try_write(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a read-only or full cache only costs a warning."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        warnings.warn(f"{path}: cannot write cache file ({exc}); continuing without it", stacklevel=3)


def _dump_entry(case: PreprocessedCase) -> bytes:
    meta = {
        "case_id": case.case_id,
        "native_geometry": case.native_geometry.to_dict(),
        "geometry": case.geometry.to_dict(),
        "intensity_mean": list(case.intensity_mean),
        "intensity_std": list(case.intensity_std),
    }
    arrays = {"image": case.image, "meta": np.array(json.dumps(meta))}
    if case.label is not None:
        arrays["label"] = case.label
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _load_entry(path: Path, case_id: str, target_shape: tuple[int, ...] | None) -> PreprocessedCase:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        image = data["image"]
        label = data["label"] if "label" in data.files else None
    geometry = ImageGeometry.from_dict(meta["geometry"])
    target_shape = geometry.shape if target_shape is None else tuple(target_shape)
    if meta["case_id"] != case_id or image.shape != (2, *target_shape) or geometry.shape != target_shape:
        raise ValueError(
            f"entry holds {meta['case_id']} {image.shape}, expected {case_id} (2, {target_shape})"
        )
    if image.dtype != np.float32 or (label is not None and label.shape != (1, *target_shape)):
        raise ValueError(f"entry has image dtype {image.dtype}, label shape {getattr(label, 'shape', None)}")
    return PreprocessedCase(
        case_id=case_id,
        image=image,
        label=label,
        native_geometry=ImageGeometry.from_dict(meta["native_geometry"]),
        geometry=geometry,
        intensity_mean=tuple(meta["intensity_mean"]),
        intensity_std=tuple(meta["intensity_std"]),
    )
