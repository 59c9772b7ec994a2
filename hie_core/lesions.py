"""Lesion-wise detection and volume agreement of one case, on its native grid, in mm and mL.

Dice, MASD and NSD score the whole mask; they cannot say whether a method finds more lesions or
only draws the large one better. This module scores lesions as objects (BraTS 2023's lesion-wise
evaluation; the instance-level detection measure Metrics Reloaded recommends for several small
structures, Maier-Hein et al., Nature Methods 2024):

- **Lesions** are the 3D connected components of a mask under :data:`CONNECTIVITY` (26: voxels
  that share a face, an edge or a corner are one lesion; ``scipy.ndimage.label``), on the native
  grid. Reference lesions come from the reference label, predicted lesions from the prediction.
- **Minimum size**: with ``min_volume_ml`` components smaller than it (mL, from the voxel
  spacing) are removed from both masks before anything else; the default is
  :data:`MIN_LESION_ML` (None: every component counts, down to one voxel).
- **Matching** (BraTS 2023: "any overlap", many to many): a reference lesion is *detected* when
  at least one voxel of it is predicted, i.e. some predicted lesion overlaps it (IoU > 0); a
  predicted lesion that overlaps no reference lesion is a *false-positive lesion*. A prediction
  split in two over one lesion detects it once and adds no false positive; one predicted blob
  bridging two lesions detects both.
- **Lesion-wise Dice** (BraTS 2023): each reference lesion's Dice against the union of the
  predicted lesions that overlap it (0 when missed), summed, divided by the number of reference
  lesions plus false-positive lesions (each scores 0).
- **Per case**: lesion sensitivity ``detected / reference lesions``; lesion F1
  ``2 TP / (2 TP + FN + FP)`` with TP the detected reference lesions, FN the missed ones and FP
  the false-positive lesions; false-positive lesion volume (mL); volume error
  ``predicted - reference`` volume (mL, signed) and its absolute value.
- **Empty masks**: an empty reference has no lesion to detect, so its lesion sensitivity is NaN;
  its lesion F1 and lesion-wise Dice are 1 when the prediction is empty too and 0 otherwise
  (as the official Dice's both-empty rule). An empty prediction of a non-empty reference
  scores sensitivity, F1 and lesion-wise Dice 0. Nothing is ever ``inf``.

Each lesion is also one row (:data:`LESION_ROW_COLUMNS`: kind, size in voxels and mL, its size
band of :data:`SIZE_BANDS`, matched or not, its Dice), from which :func:`case_columns` gives
the per-case columns again, so a run's ``lesions.csv`` alone reproduces its lesion scores.

Everything is vectorised: the masks are cropped to their joint bounding box, each labelled
once, and sizes and overlaps are ``numpy.bincount`` counts over the labels (a native
64 x 512 x 512 case takes well under a second; ``benchmarks/lesions.py`` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "CONNECTIVITY",
    "LESION_COLUMNS",
    "LESION_ROW_COLUMNS",
    "MIN_LESION_ML",
    "SIZE_BANDS",
    "SIZE_BAND_EDGES_ML",
    "CaseLesions",
    "LesionStatus",
    "case_columns",
    "columns_from_rows",
    "label_lesions",
    "lesion_metrics",
    "lesion_status",
    "size_band",
]

#: Voxels that share a face, an edge or a corner belong to one lesion (3D, 26 neighbours).
CONNECTIVITY = 26
#: Smallest lesion counted, in mL (None: every connected component, down to one voxel).
MIN_LESION_ML: float | None = None
#: Upper edges of the lesion size bands in mL: under 0.1 mL, 0.1 to 1 mL, over 1 mL.
SIZE_BAND_EDGES_ML = (0.1, 1.0)
#: The size bands, smallest first (a lesion of exactly 0.1 or 1 mL is in the middle band).
SIZE_BANDS = ("<0.1 mL", "0.1-1 mL", ">1 mL")
#: Per-case lesion columns of a run's ``metrics.csv``, in order.
LESION_COLUMNS: tuple[str, ...] = (
    "n_ref_lesions",
    "n_pred_lesions",
    "n_detected_lesions",
    "n_fp_lesions",
    "lesion_sensitivity",
    "lesion_f1",
    "lesion_dice",
    "fp_lesion_volume_ml",
    "volume_error_ml",
    "abs_volume_error_ml",
)
#: Columns of a run's ``lesions.csv``: one row per reference lesion and per predicted lesion.
LESION_ROW_COLUMNS: tuple[str, ...] = (
    "case_id",
    "split",
    "kind",
    "lesion",
    "n_voxels",
    "volume_ml",
    "size_band",
    "matched",
    "dice",
)
_STRUCTURES = {6: 1, 18: 2, 26: 3}  # connectivity -> rank of scipy's generate_binary_structure(3, r)


def size_band(volume_ml: float) -> str:
    """The size band of a lesion of ``volume_ml`` mL (:data:`SIZE_BANDS`)."""
    v = float(volume_ml)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"volume_ml must be a finite number >= 0, got {volume_ml!r}")
    low, high = SIZE_BAND_EDGES_ML
    return SIZE_BANDS[0] if v < low else SIZE_BANDS[1] if v <= high else SIZE_BANDS[2]


def _bands(volumes_ml: np.ndarray) -> list[str]:
    low, high = SIZE_BAND_EDGES_ML
    idx = np.where(volumes_ml < low, 0, np.where(volumes_ml <= high, 1, 2))
    return [SIZE_BANDS[i] for i in idx]


def _structure(connectivity: int) -> np.ndarray:
    from scipy import ndimage

    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 6, 18 or 26 (3D neighbours), got {connectivity!r}")
    return ndimage.generate_binary_structure(3, _STRUCTURES[connectivity])


def label_lesions(mask: Any, connectivity: int = CONNECTIVITY) -> tuple[np.ndarray, int]:
    """Connected components of a boolean (D, H, W) mask: int32 labels (0 background, 1..n) and n."""
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 3:
        raise ValueError(f"mask must be a 3D boolean array (D, H, W), got {mask.dtype} {mask.shape}")
    labels, n = ndimage.label(mask, structure=_structure(connectivity), output=np.int32)
    return labels, int(n)


def _check(pred: Any, ref: Any, spacing_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.dtype != bool or ref.dtype != bool:
        raise ValueError(f"pred and ref must be boolean masks, got {pred.dtype} and {ref.dtype}")
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise ValueError(f"pred and ref must be 3D (D, H, W) of one shape, got {pred.shape}, {ref.shape}")
    try:
        spacing = [float(s) for s in spacing_mm]
    except TypeError as err:
        raise ValueError(f"spacing_mm must be 3 numbers in array axis order, got {spacing_mm!r}") from err
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be 3 positive finite numbers (mm), got {spacing_mm!r}")
    return pred, ref, spacing[0] * spacing[1] * spacing[2] / 1000.0


def _crop(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """Both masks cropped to their joint bounding box (shape (0, 0, 0) when both are empty)."""
    union = pred | ref
    box = []
    for axis in range(3):
        idx = np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
    box_t = tuple(box)
    return pred[box_t], ref[box_t], box_t


def _drop_small(
    labels: np.ndarray, n: int, voxel_ml: float, min_volume_ml: float | None
) -> tuple[np.ndarray, int]:
    """Labels without the components under ``min_volume_ml`` (renumbered 1..k in scan order)."""
    if min_volume_ml is None or n == 0:
        return labels, n
    keep = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml >= min_volume_ml
    keep[0] = False
    lookup = np.zeros(n + 1, np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lookup[labels], int(keep.sum())


@dataclass(frozen=True)
class _Matched:
    """Labels of both masks (cropped) and, per component (index 0 = background), sizes and matches."""

    ref_labels: np.ndarray
    pred_labels: np.ndarray
    box: tuple[slice, ...]
    ref_voxels: np.ndarray  # (n_ref,) voxels of each reference lesion
    pred_voxels: np.ndarray  # (n_pred,)
    ref_detected: np.ndarray  # (n_ref,) bool
    pred_matched: np.ndarray  # (n_pred,) bool
    ref_dice: np.ndarray  # (n_ref,) Dice against the union of the predicted lesions overlapping it


def _match(pred: np.ndarray, ref: np.ndarray, voxel_ml: float, min_volume_ml: float | None,
           connectivity: int) -> _Matched:  # fmt: skip
    if min_volume_ml is not None and not (math.isfinite(min_volume_ml) and min_volume_ml >= 0):
        raise ValueError(f"min_volume_ml must be None or a finite number >= 0 (mL), got {min_volume_ml!r}")
    pred_c, ref_c, box = _crop(pred, ref)
    ref_labels, n_ref = _drop_small(*label_lesions(ref_c, connectivity), voxel_ml, min_volume_ml)
    pred_labels, n_pred = _drop_small(*label_lesions(pred_c, connectivity), voxel_ml, min_volume_ml)
    inside = np.flatnonzero(ref_c | pred_c)  # only foreground voxels enter the counts
    r, p = ref_labels.ravel()[inside], pred_labels.ravel()[inside]
    ref_voxels = np.bincount(r, minlength=n_ref + 1)
    pred_voxels = np.bincount(p, minlength=n_pred + 1)
    both = (r > 0) & (p > 0)
    pair = np.unique(r[both].astype(np.int64) * (n_pred + 1) + p[both])  # each overlapping (ref, pred) once
    pair_ref, pair_pred = pair // (n_pred + 1), pair % (n_pred + 1)
    inter = np.bincount(r[both], minlength=n_ref + 1)  # voxels of each reference lesion that are predicted
    union_size = np.bincount(pair_ref, weights=pred_voxels[pair_pred], minlength=n_ref + 1)
    denominator = ref_voxels + union_size
    dice = np.divide(2.0 * inter, denominator, out=np.zeros(n_ref + 1), where=denominator > 0)
    pred_matched = np.zeros(n_pred + 1, bool)
    pred_matched[pair_pred] = True
    return _Matched(ref_labels, pred_labels, box, ref_voxels[1:], pred_voxels[1:], inter[1:] > 0,
                    pred_matched[1:], dice[1:])  # fmt: skip


def case_columns(
    ref_volume_ml: Sequence[float],
    ref_detected: Sequence[bool],
    ref_dice: Sequence[float],
    pred_volume_ml: Sequence[float],
    pred_matched: Sequence[bool],
) -> dict[str, float | int]:
    """The per-case lesion columns (:data:`LESION_COLUMNS`) from one case's lesions.

    Args:
        ref_volume_ml: Volume of each reference lesion (mL), (n_ref,).
        ref_detected: Whether each reference lesion is detected, (n_ref,).
        ref_dice: Each reference lesion's Dice (0 when missed), (n_ref,).
        pred_volume_ml: Volume of each predicted lesion (mL), (n_pred,).
        pred_matched: Whether each predicted lesion overlaps a reference lesion, (n_pred,).

    Returns:
        :data:`LESION_COLUMNS` (see the module docstring for the empty-mask rules).
    """
    ref_vol, pred_vol = np.asarray(ref_volume_ml, float), np.asarray(pred_volume_ml, float)
    detected, matched = np.asarray(ref_detected, bool), np.asarray(pred_matched, bool)
    dice = np.asarray(ref_dice, float)
    if not (ref_vol.shape == detected.shape == dice.shape and pred_vol.shape == matched.shape):
        raise ValueError("reference arrays (volume, detected, dice) and predicted arrays (volume, matched) "
                         "must each have one length")  # fmt: skip
    n_ref, n_pred = ref_vol.size, pred_vol.size
    tp, fp = int(detected.sum()), int((~matched).sum())
    fn = n_ref - tp
    f1_denominator = 2 * tp + fn + fp
    volume_error = float(pred_vol.sum() - ref_vol.sum())
    return {
        "n_ref_lesions": n_ref,
        "n_pred_lesions": n_pred,
        "n_detected_lesions": tp,
        "n_fp_lesions": fp,
        "lesion_sensitivity": tp / n_ref if n_ref else math.nan,
        "lesion_f1": 2 * tp / f1_denominator if f1_denominator else 1.0,
        "lesion_dice": float(dice.sum()) / (n_ref + fp) if n_ref + fp else 1.0,
        "fp_lesion_volume_ml": float(pred_vol[~matched].sum()),
        "volume_error_ml": volume_error,
        "abs_volume_error_ml": abs(volume_error),
    }


@dataclass(frozen=True)
class CaseLesions:
    """One case's lesion-wise scores.

    Attributes:
        columns: :data:`LESION_COLUMNS` of the case.
        lesions: One dict per reference lesion, then per predicted lesion, keyed by
            :data:`LESION_ROW_COLUMNS` without ``case_id`` and ``split``.
    """

    columns: dict[str, float | int]
    lesions: list[dict[str, Any]]

    def rows(self, case_id: str, split: str | None) -> list[dict[str, Any]]:
        """The lesions as rows of ``lesions.csv`` (:data:`LESION_ROW_COLUMNS`)."""
        return [{"case_id": case_id, "split": split, **lesion} for lesion in self.lesions]


def lesion_metrics(
    pred: Any,
    ref: Any,
    spacing_mm: Sequence[float],
    min_volume_ml: float | None = MIN_LESION_ML,
    connectivity: int = CONNECTIVITY,
) -> CaseLesions:
    """Lesion-wise detection, lesion-wise Dice and volume error of one case (module docstring).

    Args:
        pred: Predicted boolean mask (D, H, W) on the native grid (NumPy, or a CPU tensor).
        ref: Reference boolean mask (D, H, W), same shape.
        spacing_mm: Voxel size (mm) in array axis order (D, H, W); volumes are in mL from it.
        min_volume_ml: Components smaller than this (mL) are dropped from both masks; None keeps all.
        connectivity: 6, 18 or 26 neighbours (default :data:`CONNECTIVITY`).

    Returns:
        The per-case columns and one row per lesion.
    """
    pred, ref, voxel_ml = _check(pred, ref, spacing_mm)
    m = _match(pred, ref, voxel_ml, min_volume_ml, connectivity)
    ref_ml, pred_ml = m.ref_voxels * voxel_ml, m.pred_voxels * voxel_ml
    columns = case_columns(ref_ml, m.ref_detected, m.ref_dice, pred_ml, m.pred_matched)
    lesions = [
        {"kind": "reference", "lesion": i + 1, "n_voxels": int(n), "volume_ml": float(v), "size_band": b,
         "matched": bool(d), "dice": float(s)}
        for i, (n, v, b, d, s) in enumerate(zip(m.ref_voxels, ref_ml, _bands(ref_ml), m.ref_detected, m.ref_dice,
                                                strict=True))
    ]  # fmt: skip
    lesions += [
        {"kind": "predicted", "lesion": i + 1, "n_voxels": int(n), "volume_ml": float(v), "size_band": b,
         "matched": bool(k), "dice": math.nan}
        for i, (n, v, b, k) in enumerate(zip(m.pred_voxels, pred_ml, _bands(pred_ml), m.pred_matched, strict=True))
    ]  # fmt: skip
    return CaseLesions(columns, lesions)


@dataclass(frozen=True)
class LesionStatus:
    """Where a prediction misses reference lesions and adds false-positive lesions (for viewers).

    Attributes:
        missed: Voxels of the reference lesions no predicted lesion overlaps, bool (D, H, W).
        false_positive: Voxels of the predicted lesions that overlap no reference lesion, bool (D, H, W).
        n_missed: Number of missed reference lesions.
        n_false_positive: Number of false-positive lesions.
        n_reference: Number of reference lesions.
    """

    missed: np.ndarray
    false_positive: np.ndarray
    n_missed: int
    n_false_positive: int
    n_reference: int


def lesion_status(
    pred: Any, ref: Any, min_volume_ml: float | None = MIN_LESION_ML, spacing_mm: Sequence[float] | None = None,
    connectivity: int = CONNECTIVITY,
) -> LesionStatus:  # fmt: skip
    """The missed and false-positive lesions of ``pred`` against ``ref`` as full-size masks.

    ``spacing_mm`` is needed only with ``min_volume_ml``; matching is that of :func:`lesion_metrics`.
    """
    if min_volume_ml is not None and spacing_mm is None:
        raise ValueError("min_volume_ml needs spacing_mm (the voxel size gives each lesion's volume)")
    pred, ref, voxel_ml = _check(pred, ref, spacing_mm or (1.0, 1.0, 1.0))
    m = _match(pred, ref, voxel_ml, min_volume_ml, connectivity)
    missed, false_positive = np.zeros(ref.shape, bool), np.zeros(ref.shape, bool)
    missed[m.box] = np.concatenate([[False], ~m.ref_detected])[m.ref_labels]
    false_positive[m.box] = np.concatenate([[False], ~m.pred_matched])[m.pred_labels]
    return LesionStatus(missed, false_positive, int((~m.ref_detected).sum()), int((~m.pred_matched).sum()),
                        int(m.ref_detected.size))  # fmt: skip


def columns_from_rows(lesions: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """The per-case lesion columns of ``cases`` from a run's ``lesions.csv`` rows (:func:`case_columns`).

    Args:
        lesions: Rows with :data:`LESION_ROW_COLUMNS`.
        cases: Rows with ``case_id`` and ``split`` (a case without a lesion row has no lesion
            and no prediction: its columns follow the empty-mask rules).

    Returns:
        ``split``, ``case_id`` and :data:`LESION_COLUMNS`, one row per row of ``cases``.
    """
    import pandas as pd

    keyed = lesions.assign(_split=lesions["split"].astype(object).where(lesions["split"].notna(), ""))
    groups = {(str(s), str(c)): g for (s, c), g in keyed.groupby(["_split", "case_id"], sort=False)}
    out = []
    for split, case_id in zip(cases["split"], cases["case_id"], strict=True):
        rows = groups.get(("" if pd.isna(split) else str(split), str(case_id)), lesions.iloc[:0])
        ref, pred = rows[rows["kind"] == "reference"], rows[rows["kind"] == "predicted"]
        out.append({"split": split, "case_id": case_id,
                    **case_columns(ref["volume_ml"], ref["matched"].astype(bool), ref["dice"], pred["volume_ml"],
                                   pred["matched"].astype(bool))})  # fmt: skip
    return pd.DataFrame(out, columns=["split", "case_id", *LESION_COLUMNS])
