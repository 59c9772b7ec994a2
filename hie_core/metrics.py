"""Per-case segmentation metrics with the official BONBID-HIE semantics, and their statistics.

``case_metrics(pred, ref, spacing_mm)`` scores one case on its native grid:

- Dice ``2|P∩G| / (|P|+|G|)``.
- MASD (mm): the mean of the two directed average surface distances, G->P and P->G, each
  weighted by surfel area (not MONAI's pooled symmetric ASD).
- NSD: the normalised surface Dice at ``tolerance_mm`` (2 mm in the challenge), surfel-area
  weighted.

Surfaces follow DeepMind's ``surface-distance`` package (Nikolov et al. 2021), which the
challenge's evaluation uses: the mask is zero-padded, every corner of the voxel grid gets the
8-bit code of the 2x2x2 voxels around it, corners whose code is neither 0 nor 255 are surface
elements ("surfels"), each weighted by the area of the marching-cubes triangles of its code
scaled to the voxel spacing, and the distance from a surfel to the other surface is the
Euclidean distance transform (in mm) of the other mask's surfel grid. Everything is computed
on the joint bounding box plus a one-voxel margin, which changes no value and makes a
native 64x256x256 case cost milliseconds.

The per-code triangle normals below are the data of DeepMind's lookup table (Apache-2.0),
stored as absolute values in eighths of a voxel face (the sign of a normal does not change
its area); code ``255 - c`` has the surface of code ``c``, so only codes 0-127 are stored.

One implementation serves NumPy arrays and torch tensors on any device (slicing, a table
gather and ``hie_core.distance.distance_transform_edt``, which runs CuPy on CUDA tensors).

Empty masks: both empty -> Dice 1, MASD 0, NSD 1; exactly one empty -> Dice 0, MASD NaN,
NSD 0. No result is ever ``inf``. ``summarize`` skips NaN, counts what it skipped and refuses
``inf``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hie_core.bootstrap import CONFIDENCE, crossed_ci, resamples
from hie_core.distance import distance_transform_edt

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "BURDEN_STRATA",
    "METRIC_LABELS",
    "METRIC_NAMES",
    "NSD_TOLERANCE_MM",
    "SCORE_COLUMNS",
    "MetricAccumulator",
    "SurfaceDistances",
    "burden_stratum",
    "case_metrics",
    "lesion_burden_percent",
    "summarize",
    "surface_distances",
    "surfel_area_table",
]

BURDEN_STRATA = ("<1%", "1-5%", ">5%")
#: The challenge's NSD tolerance in mm.
NSD_TOLERANCE_MM = 2.0
#: The three official metrics, in the order of every table.
METRIC_NAMES: tuple[str, ...] = ("dice", "masd_mm", "nsd")
#: Each metric's name in tables, legends and prose.
METRIC_LABELS: dict[str, str] = {
    "dice": "Dice",
    "masd_mm": "MASD (mm)",
    "nsd": f"NSD ({NSD_TOLERANCE_MM:g} mm)",
}
#: The per-case columns that every ``metrics.csv`` has (a run writes two volume columns more).
SCORE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "split",
    "burden_percent",
    "stratum",
    *METRIC_NAMES,
    "n_pred",
    "n_ref",
)
# Codes 0..127, space separated; each code is a run of 3-digit triangles |n_x n_y n_z| * 8.
_NORMALS_EIGHTHS = (
    "- 111 111 220220 111 202202 111111 400222111 111 111111 202202 400222111 220220 400222111 "
    "400222111 400400 111 022022 111111 040222111 111111 004222111 111111111 111222222111 111111 "
    "022022111 202202111 111333022202 111220220 333022111220 400111222111 400111222 111 111111 022022 "
    "040111222 111111 111202202 022022111 333022111202 111111 111111111 004222111 222222111111 "
    "111220220 400222111111 022333111220 400222111 220220 040222111 040111222 040040 220220111 "
    "333202111220 111040222111 040222111 111220220 040222111111 333220111202 040222111 220220220220 "
    "220220111 111220220 220220 111 111111 111111 111220220 022022 004222111 022022111 333022111220 "
    "111111 111111111 111202202 400222111111 040222111 222222111111 202333022111 400222111 202202 "
    "004222111 111202202 202333220111 004222111 004004 111111222004 111222004 202202111 004222111111 "
    "202202202202 111202202 202333220111 004222111 111202202 202202 111111 111111111 111022022 "
    "040111222111 022022111 004222111111 022022022022 022022111 111111111 111111111111 004222111111 "
    "111111111 040222111111 111111111 022022111 111111 400222111 222111222111 333022111202 040222111 "
    "333220022111 111222004 111022022 022022 400222111111 111111111 202202111 111111 220220111 111111 "
    "111111 111 "
)
_NSD_REL_SLACK = 1e-6  # float32 distances: a surfel exactly at the tolerance counts as inside


def _abs_normals() -> np.ndarray:
    """Triangle normals per code, (256, 4, 3), absolute, in voxel-face units (0 pads)."""
    normals = np.zeros((256, 4, 3))
    for code, run in enumerate(_NORMALS_EIGHTHS.split()):
        for t in range(0 if run == "-" else len(run) // 3):
            normals[code, t] = [int(ch) / 8 for ch in run[3 * t : 3 * t + 3]]
    normals[128:] = normals[127::-1]
    return normals


_ABS_NORMALS = _abs_normals()


def surfel_area_table(spacing_mm: Sequence[float]) -> np.ndarray:
    """Surfel area in mm^2 of each 2x2x2 neighbour code, (256,) float64.

    Bit ``7 - (4*a + 2*b + c)`` of a code is the voxel at offset (a, b, c), a, b, c in {0, 1},
    of the 2x2x2 block (array axis order). A triangle normal (n0, n1, n2) in voxel units has
    the area ``|(n0*s1*s2, n1*s0*s2, n2*s0*s1)|`` in mm^2.
    """
    s0, s1, s2 = _check_spacing(spacing_mm)
    scaled = _ABS_NORMALS * np.array([s1 * s2, s0 * s2, s0 * s1])
    return np.sqrt((scaled**2).sum(axis=-1)).sum(axis=-1)


def _check_spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    try:
        spacing = tuple(float(s) for s in spacing_mm)
    except TypeError as err:
        raise ValueError(f"spacing_mm must be 3 numbers in array axis order, got {spacing_mm!r}") from err
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be 3 positive finite numbers (mm), got {spacing_mm!r}")
    return spacing  # type: ignore[return-value]


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - numpy-only install
        return None
    return torch


def _check_masks(pred: Any, ref: Any) -> tuple[Any, Any]:
    """Both as torch tensors (on the tensor's device) if either is one, else NumPy; validated."""
    torch = _torch()
    if torch is not None and (isinstance(pred, torch.Tensor) or isinstance(ref, torch.Tensor)):
        device = pred.device if isinstance(pred, torch.Tensor) else ref.device
        pred, ref = (torch.as_tensor(m, device=device) for m in (pred, ref))
        is_bool = pred.dtype == torch.bool and ref.dtype == torch.bool
    else:
        pred, ref = np.asarray(pred), np.asarray(ref)
        is_bool = pred.dtype == bool and ref.dtype == bool
    if not is_bool:
        raise ValueError(f"pred and ref must be boolean masks, got {pred.dtype} and {ref.dtype}")
    if pred.ndim != 3 or tuple(pred.shape) != tuple(ref.shape):
        raise ValueError(
            f"pred and ref must be 3D (D, H, W) of one shape, got {tuple(pred.shape)}, {tuple(ref.shape)}"
        )
    return pred, ref


def _padded_crop(masks: tuple[Any, Any]) -> tuple[Any, Any]:
    """Crop both masks to their joint bounding box and zero-pad one voxel on every side (uint8)."""
    union = masks[0] | masks[1]
    bounds = []
    for axis in range(3):
        proj = union.any(axis=tuple(a for a in range(3) if a != axis))
        idx = np.flatnonzero(proj.cpu().numpy() if hasattr(proj, "cpu") else proj)
        bounds.append(slice(int(idx[0]), int(idx[-1]) + 1))
    shape = tuple(b.stop - b.start + 2 for b in bounds)
    out = []
    for mask in masks:
        if isinstance(mask, np.ndarray):
            padded = np.zeros(shape, np.uint8)
        else:
            padded = _torch().zeros(shape, dtype=_torch().uint8, device=mask.device)
        padded[1:-1, 1:-1, 1:-1] = mask[tuple(bounds)]
        out.append(padded)
    return out[0], out[1]


def _neighbour_codes(padded: Any) -> Any:
    """8-bit code of every 2x2x2 block of a padded uint8 mask: one corner of the voxel grid each."""
    n0, n1, n2 = (s - 1 for s in padded.shape)
    code = 0
    for a, b, c in itertools.product((0, 1), repeat=3):
        code = code + padded[a : a + n0, b : b + n1, c : c + n2] * (1 << (7 - (4 * a + 2 * b + c)))
    return code


@dataclass(frozen=True)
class SurfaceDistances:
    """Surfels of both masks with their areas and their distance to the other surface.

    1D float64 arrays (NumPy, or torch tensors on the input's device), in no particular order.

    Attributes:
        ref_to_pred_mm: distance of every reference surfel to the predicted surface (mm).
        pred_to_ref_mm: distance of every predicted surfel to the reference surface (mm).
        ref_areas_mm2: area of every reference surfel (mm^2).
        pred_areas_mm2: area of every predicted surfel (mm^2).
    """

    ref_to_pred_mm: Any
    pred_to_ref_mm: Any
    ref_areas_mm2: Any
    pred_areas_mm2: Any

    def directed_means_mm(self) -> tuple[float, float]:
        """Surfel-area weighted mean distances (ref->pred, pred->ref) in mm."""
        return (
            float((self.ref_to_pred_mm * self.ref_areas_mm2).sum() / self.ref_areas_mm2.sum()),
            float((self.pred_to_ref_mm * self.pred_areas_mm2).sum() / self.pred_areas_mm2.sum()),
        )

    def surface_dice(self, tolerance_mm: float) -> float:
        """Normalised surface Dice: area of surfels within ``tolerance_mm`` over all surfel area."""
        tol = tolerance_mm * (1 + _NSD_REL_SLACK)
        close = self.ref_areas_mm2[self.ref_to_pred_mm <= tol].sum()
        close = close + self.pred_areas_mm2[self.pred_to_ref_mm <= tol].sum()
        return float(close / (self.ref_areas_mm2.sum() + self.pred_areas_mm2.sum()))


def _surface_distances(pred: Any, ref: Any, spacing: tuple[float, float, float]) -> SurfaceDistances:
    codes = [_neighbour_codes(p) for p in _padded_crop((pred, ref))]
    borders = [(c != 0) & (c != 255) for c in codes]
    dist = [distance_transform_edt(~b, spacing) for b in borders]
    to_other = [dist[0][borders[1]], dist[1][borders[0]]]  # ref->pred, pred->ref
    table = surfel_area_table(spacing)
    if isinstance(pred, np.ndarray):
        areas = [table[c[b]] for c, b in zip(codes, borders, strict=True)]
        to_other = [d.astype(np.float64) for d in to_other]
    else:
        table_t = _torch().as_tensor(table, device=pred.device)
        areas = [table_t[c[b].long()] for c, b in zip(codes, borders, strict=True)]
        to_other = [d.double() for d in to_other]
    return SurfaceDistances(to_other[0], to_other[1], ref_areas_mm2=areas[1], pred_areas_mm2=areas[0])


def surface_distances(pred: Any, ref: Any, spacing_mm: Sequence[float]) -> SurfaceDistances:
    """Surfels of two non-empty masks, their areas and distances to the other surface.

    Args:
        pred: predicted boolean mask (D, H, W), NumPy array or torch tensor.
        ref: reference boolean mask (D, H, W), same shape.
        spacing_mm: voxel size (mm) in array axis order (D, H, W).

    Raises:
        ValueError: bad masks or spacing, or an empty mask (it has no surface).
    """
    pred, ref = _check_masks(pred, ref)
    spacing = _check_spacing(spacing_mm)
    if not bool(pred.any()) or not bool(ref.any()):
        raise ValueError("surface_distances needs two non-empty masks; an empty mask has no surface")
    return _surface_distances(pred, ref, spacing)


def case_metrics(
    pred: Any, ref: Any, spacing_mm: Sequence[float], tolerance_mm: float = NSD_TOLERANCE_MM
) -> dict:
    """Dice, MASD and NSD of one case with the official BONBID-HIE semantics.

    Args:
        pred: predicted boolean mask (D, H, W) on the native grid, NumPy array or torch tensor
            (a tensor on CUDA is scored on the GPU).
        ref: reference boolean mask (D, H, W), same shape.
        spacing_mm: voxel size (mm) in array axis order (D, H, W); required.
        tolerance_mm: NSD tolerance in mm (2 mm in the challenge).

    Returns:
        ``dice``, ``masd_mm`` (NaN when exactly one mask is empty), ``nsd``, ``n_pred`` and
        ``n_ref`` (voxel counts), ``pred_volume_ml`` and ``ref_volume_ml``.
    """
    pred, ref = _check_masks(pred, ref)
    spacing = _check_spacing(spacing_mm)
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")
    n_pred, n_ref, n_both = int(pred.sum()), int(ref.sum()), int((pred & ref).sum())
    if n_pred == 0 and n_ref == 0:
        dice, masd_mm, nsd = 1.0, 0.0, 1.0
    elif n_pred == 0 or n_ref == 0:
        dice, masd_mm, nsd = 0.0, math.nan, 0.0
    else:
        surf = _surface_distances(pred, ref, spacing)
        dice = 2.0 * n_both / (n_pred + n_ref)
        masd_mm = 0.5 * sum(surf.directed_means_mm())
        nsd = surf.surface_dice(tolerance_mm)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    return {
        "dice": dice,
        "masd_mm": masd_mm,
        "nsd": nsd,
        "n_pred": n_pred,
        "n_ref": n_ref,
        "pred_volume_ml": n_pred * voxel_ml,
        "ref_volume_ml": n_ref * voxel_ml,
    }


def _metric_values(per_case: Any, metric: str) -> np.ndarray:
    if hasattr(per_case, "columns"):  # a pandas DataFrame
        if metric not in per_case.columns:
            raise ValueError(f"metric {metric!r} is not a column of per_case")
        return per_case[metric].to_numpy(dtype=float)
    rows = list(per_case)
    missing = [i for i, row in enumerate(rows) if metric not in row]
    if missing:
        raise ValueError(f"metric {metric!r} missing from per-case rows {missing[:5]}")
    return np.array([row[metric] for row in rows], dtype=float)


def summarize(
    per_case: Iterable[dict] | pd.DataFrame,
    metrics: Sequence[str] = METRIC_NAMES,
    n_resamples: int | None = None,
    seed: int = 0,
    ci: float = CONFIDENCE,
) -> dict[str, dict[str, float]]:
    """Mean, SD, median and percentile-bootstrap CI of the mean of each metric over cases.

    NaN values (e.g. MASD with one empty mask) are skipped and counted in ``n_skipped``. The
    interval is :func:`hie_core.bootstrap.crossed_ci` of the kept values as a one-run matrix (the
    ordinary bootstrap of the cases), the study's one bootstrap.

    Args:
        per_case: list of per-case dicts (as from ``case_metrics``) or a DataFrame.
        metrics: the metrics to summarise.
        n_resamples: bootstrap resamples of the cases (:func:`hie_core.bootstrap.resamples`: else
            ``$HIE_BOOTSTRAP_RESAMPLES``, else 9999).
        seed: seed of the bootstrap (each metric resamples from the same seed).
        ci: coverage of the interval, in (0, 1).

    Returns:
        ``{metric: {mean, sd (ddof=1), median, ci_low, ci_high, n, n_skipped}}``; NaN
        statistics when no case is left (SD and the interval also when one is).

    Raises:
        ValueError: an infinite value (names the metric), a missing metric, bad arguments.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    n_resamples = resamples(n_resamples)
    rows = per_case if hasattr(per_case, "columns") else list(per_case)
    out = {}
    for metric in metrics:
        values = _metric_values(rows, metric)
        if np.isinf(values).any():
            raise ValueError(f"metric {metric!r} has infinite values; an inf must never be averaged")
        kept = values[~np.isnan(values)]
        n = kept.size
        stats = dict.fromkeys(("mean", "sd", "median", "ci_low", "ci_high"), math.nan)
        if n:
            low, high = crossed_ci(kept[:, None], n_resamples, seed, ci)
            stats.update(mean=float(kept.mean()), median=float(np.median(kept)), ci_low=low, ci_high=high)
            stats["sd"] = float(kept.std(ddof=1)) if n > 1 else math.nan
        out[metric] = {**stats, "n": int(n), "n_skipped": int(values.size - n)}
    return out


def lesion_burden_percent(label: Any, brain_mask: Any) -> float:
    """Lesion burden: 100 * lesion voxels / brain voxels (same grid, so volumes cancel).

    Args:
        label: boolean lesion mask (D, H, W), NumPy or torch.
        brain_mask: boolean brain mask (D, H, W), e.g. ``adc > 0`` of the skull-stripped ADC.
    """
    label, brain_mask = _check_masks(label, brain_mask)
    n_brain = int(brain_mask.sum())
    if n_brain == 0:
        raise ValueError("brain_mask is empty; the lesion burden is undefined")
    return 100.0 * int(label.sum()) / n_brain


def burden_stratum(burden_percent: float) -> str:
    """The challenge's lesion-burden stratum: ``"<1%"`` for [0, 1), ``"1-5%"`` for [1, 5],
    ``">5%"`` for (5, 100] (percent of brain volume)."""
    value = float(burden_percent)
    if not (0 <= value <= 100):
        raise ValueError(f"burden_percent must be in [0, 100], got {burden_percent!r}")
    return BURDEN_STRATA[0] if value < 1 else BURDEN_STRATA[1] if value <= 5 else BURDEN_STRATA[2]


class MetricAccumulator:
    """Collects ``case_metrics`` rows by case id; a thin shell over the pure functions.

    Args:
        tolerance_mm: NSD tolerance in mm.
    """

    def __init__(self, tolerance_mm: float = NSD_TOLERANCE_MM) -> None:
        if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
            raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")
        self.tolerance_mm = float(tolerance_mm)
        self.rows: list[dict] = []

    def add(self, case_id: str, pred: Any, ref: Any, spacing_mm: Sequence[float]) -> dict:
        """Score one case (see ``case_metrics``) and keep the row; returns it."""
        if any(row["case_id"] == case_id for row in self.rows):
            raise ValueError(f"case_id {case_id!r} was already added")
        row = {"case_id": case_id, **case_metrics(pred, ref, spacing_mm, self.tolerance_mm)}
        self.rows.append(row)
        return row

    def to_frame(self) -> pd.DataFrame:
        """One row per case, indexed by ``case_id``."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["case_id", *_ROW_KEYS]).set_index("case_id")

    def summary(
        self,
        metrics: Sequence[str] = METRIC_NAMES,
        n_resamples: int | None = None,
        seed: int = 0,
        ci: float = CONFIDENCE,
    ) -> dict[str, dict[str, float]]:
        """``summarize`` of the rows so far."""
        return summarize(self.rows, metrics=metrics, n_resamples=n_resamples, seed=seed, ci=ci)


_ROW_KEYS = (*METRIC_NAMES, "n_pred", "n_ref", "pred_volume_ml", "ref_volume_ml")
