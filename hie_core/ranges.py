"""The value ranges of the two input maps, checked when they are read, so that swapped inputs are refused.

BONBID-HIE's maps have different scales:

- ADC (``1ADC_ss``) is the apparent diffusion coefficient in 10^-6 mm^2/s: 0 outside the
  skull-stripped brain, about 0-3,500 in it (CSF higher, up to about 4,000-5,000), never widely
  negative.
- ZADC (``2Z_ADC``, ``..._clipped10.mha``) is a z-score against a normative atlas, clipped to
  [-10, 10].

The checks below cannot fire on such maps, yet catch either map given as the other:

- a ZADC map with a finite value outside [-:data:`ZADC_LIMIT`, :data:`ZADC_LIMIT`] is not a
  ZADC map (an ADC map has brain values in the hundreds and thousands);
- an ADC map whose nonzero voxels' 99th percentile is under :data:`ADC_MIN_P99` (a ZADC
  map's is at most 10; an ADC in 10^-3 mm^2/s, at most about 5), or with more than
  :data:`ADC_NEGATIVE_SHARE` of its nonzero voxels below :data:`ADC_NEGATIVE` (a signed map),
  is not an ADC map in 10^-6 mm^2/s.

A constant map is left to :mod:`hie_core.data`'s warning (a failed export); non-finite voxels
are reported there too and skipped here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["ADC_MIN_P99", "ADC_NEGATIVE", "ADC_NEGATIVE_SHARE", "ZADC_LIMIT", "range_problem"]

#: A ZADC map is clipped to [-10, 10]; half a unit of slack for resampling or rounding.
ZADC_LIMIT = 10.5
#: The 99th percentile of an ADC map's nonzero voxels is above this (10^-6 mm^2/s; brain tissue is 800-2,000).
ADC_MIN_P99 = 50.0
#: A voxel below this (10^-6 mm^2/s) is widely negative, which an ADC map's voxels are not ...
ADC_NEGATIVE = -50.0
#: ... except for at most this share of the nonzero voxels (noise at the brain's edge).
ADC_NEGATIVE_SHARE = 0.05
_SWAP = "check that the ADC and ZADC maps are not swapped"


def range_problem(kind: str, array: np.ndarray, path: str | Path) -> str | None:
    """Why ``array`` (read from ``path``) is not a map of ``kind`` (``"ADC"`` or ``"ZADC"``), or None.

    Args:
        kind: ``"ADC"`` or ``"ZADC"`` (anything else: None).
        array: the map, any shape; non-finite voxels are ignored.
        path: its file, named in the message.

    Returns:
        One line naming the file, the range found, the range expected and what to check; None
        when the values fit (or the map is constant or empty).
    """
    values = np.asarray(array)
    if kind not in ("ADC", "ZADC") or not np.issubdtype(values.dtype, np.number):
        return None
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return None
    lo, hi = float(values.min()), float(values.max())
    if kind == "ZADC":
        if lo < -ZADC_LIMIT or hi > ZADC_LIMIT:
            return (f"{path}: not a ZADC map: its values span {lo:.4g} to {hi:.4g}, and a ZADC map is a z-score clipped "
                    f"to [-10, 10] (values in the hundreds or thousands are an ADC map's, in 10^-6 mm^2/s); {_SWAP}")  # fmt: skip
        return None
    nonzero = values[values != 0]
    p99 = float(np.percentile(np.abs(nonzero), 99))
    if p99 < ADC_MIN_P99:
        return (f"{path}: not an ADC map in 10^-6 mm^2/s: 99% of its nonzero voxels are within +-{p99:.3g} (range "
                f"{lo:.3g} to {hi:.3g}), where an ADC map holds about 0-3,500 in the brain (a ZADC z-score stays within "
                f"+-10; an ADC in 10^-3 mm^2/s, about 0-3.5, must be multiplied by 1000); {_SWAP}")  # fmt: skip
    negative = float(np.mean(nonzero < ADC_NEGATIVE))
    if negative > ADC_NEGATIVE_SHARE:
        return (f"{path}: not an ADC map: {negative:.0%} of its nonzero voxels are below {ADC_NEGATIVE:g} (down to "
                f"{lo:.4g}), and ADC in 10^-6 mm^2/s (about 0-3,500 in the brain) is never widely negative; {_SWAP}")  # fmt: skip
    return None
