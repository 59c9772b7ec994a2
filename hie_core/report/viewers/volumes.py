"""Volumes for display: validation, windowing to uint8, content crops, slice choice, colours.

The one definition of each array helper the viewers share: the Plotly slice viewers
(:mod:`hie_core.report.viewers.slices`), the live ipywidgets viewer (:mod:`hie_core.report.viewers.live`) and
the matplotlib stills (:mod:`hie_core.report.viewers.stills`). Arrays are (D, H, W) with D the slice
axis; ``spacing_mm`` is (sz, sy, sx) in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import to_rgb

__all__ = [
    "AGREEMENT_COLOURS",
    "AGREEMENT_LABELS",
    "AGREEMENT_TITLE",
    "PALETTE",
    "REFERENCE_COLOUR",
    "REFERENCE_LABEL",
    "agreement_codes",
    "agreement_masks",
    "brain_box",
    "busiest_slice",
    "check_volumes",
    "compose_rgb",
    "content_box",
    "default_window",
    "montage_slices",
    "overlay_colors",
    "rgb_triplets",
    "slice_counts",
    "window_to_uint8",
]

# Colours of overlays toggled one by one and of chart series (ColorBrewer Set1 without green).
PALETTE = ("#e41a1c", "#377eb8", "#ff7f00", "#984ea3", "#ffff33", "#a65628", "#f781bf", "#00ffff", "#999999")

#: The one coding of a prediction against the reference label, in every viewer and still. Okabe-Ito
#: colours, safe for deuteranopia and protanopia: blue, vermillion and yellow differ in hue on the
#: blue-yellow axis those readers keep, and in CIE L* lightness (about 48, 57 and 89).
#: Keyed by the codes of :func:`agreement_codes` (1 true positive, 2 miss, 3 false positive).
AGREEMENT_COLOURS = {1: "#0072B2", 2: "#D55E00", 3: "#F0E442"}
#: Legend text of each agreement code (a reader's words, the reference named).
AGREEMENT_LABELS = {
    1: "true positive (prediction and reference)",
    2: "miss (reference only)",
    3: "false positive (prediction only)",
}
#: The reference label shown alone (no prediction), Okabe-Ito bluish green.
REFERENCE_COLOUR = "#009E73"
#: What the reference is, for legends.
REFERENCE_LABEL = "reference (expert lesion label)"
#: The title of every agreement legend.
AGREEMENT_TITLE = f"Prediction against the {REFERENCE_LABEL}"


def check_volumes(
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], tuple[float, float, float]]:
    """Validates maps and masks on one (D, H, W) grid.

    Args:
        images: Name -> (D, H, W) map; at least one.
        overlays: Name -> (D, H, W) mask; non-zero means inside.
        spacing_mm: (sz, sy, sx) voxel spacing in mm, all finite and positive.

    Returns:
        (float32 maps, bool masks, spacing as floats).

    Raises:
        ValueError: On an empty ``images``, a non-3D or mismatched shape, or a bad spacing.
    """
    if not images:
        raise ValueError("images is empty: give at least one (D, H, W) map")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm={spacing_mm!r} must be 3 finite positive numbers (sz, sy, sx)")
    maps = {k: np.asarray(v, dtype=np.float32) for k, v in images.items()}
    shape = next(iter(maps.values())).shape
    if len(shape) != 3 or min(shape) == 0:
        raise ValueError(f"images must be non-empty (D, H, W) arrays, got shape {shape}")
    masks = {k: np.asarray(v) != 0 for k, v in (overlays or {}).items()}
    for name, array in {**maps, **masks}.items():
        if array.shape != shape:
            raise ValueError(f"{name!r} has shape {array.shape}, expected {shape} like the first map")
    return maps, masks, spacing  # type: ignore[return-value]


def default_window(volume: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """Display window: percentiles of the brain voxels of a map.

    Brain voxels are the finite voxels whose value differs from the background, taken as the
    value of voxel (0, 0, 0) (0 for skull-stripped ADC, a constant after z-scoring). Falls back
    to all finite voxels, then to (0, 1).

    Args:
        volume: Map (D, H, W).
        percentiles: (low, high) percentiles in [0, 100].

    Returns:
        (low, high) with high > low.
    """
    volume = np.asarray(volume, dtype=np.float32)
    finite = np.isfinite(volume)
    values = volume[finite & (volume != volume.flat[0])]
    if values.size == 0:
        values = volume[finite]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, percentiles))
    return (low, high) if high > low else (low, low + 1.0)


def window_to_uint8(
    volume: np.ndarray, window: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """Maps a window linearly to 0..255 (clipped; NaN -> 0).

    Args:
        volume: Map of any shape.
        window: (low, high) in the map's units; default :func:`default_window`.

    Returns:
        (uint8 array of the same shape, the window used).
    """
    window = default_window(volume) if window is None else (float(window[0]), float(window[1]))
    low, high = window
    if not high > low:
        raise ValueError(f"window={window!r} needs high > low")
    scaled = (np.asarray(volume, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.nan_to_num(np.clip(np.rint(scaled), 0, 255), nan=0.0).astype(np.uint8), window


def content_box(volumes: Sequence[np.ndarray], margin: int = 2) -> tuple[int, int, int, int]:
    """In-plane bounding box of everything that differs from the background, over all slices.

    Args:
        volumes: (D, H, W) maps (background = value of voxel (0, 0, 0)) or bool masks.
        margin: Voxels added on each side.

    Returns:
        (row_start, row_stop, col_start, col_stop), the whole plane if nothing stands out.
    """
    height, width = np.shape(volumes[0])[1:]
    content = np.zeros((height, width), dtype=bool)
    for volume in volumes:
        volume = np.asarray(volume)
        inside = volume if volume.dtype == bool else np.isfinite(volume) & (volume != volume.flat[0])
        content |= inside.any(axis=0)
    rows, cols = np.nonzero(content)
    if rows.size == 0:
        return 0, height, 0, width
    return (
        max(int(rows.min()) - margin, 0), min(int(rows.max()) + 1 + margin, height),
        max(int(cols.min()) - margin, 0), min(int(cols.max()) + 1 + margin, width),
    )  # fmt: skip


def brain_box(
    maps: Sequence[np.ndarray], labels: Sequence[np.ndarray | None] = (), margin: int = 3
) -> tuple[int, int, int, int]:
    """The in-plane crop of a figure: the brain (content of ``maps``) and the labels, plus a margin.

    Every panel of one figure takes this one box, so the brain fills the panels and panels align.
    Predictions are not in it: a false positive outside the brain and the reference is cut away.

    Args:
        maps: (D, H, W) maps whose content (values other than the background at voxel (0, 0, 0),
            e.g. ADC > 0 in a skull-stripped scan) is the brain.
        labels: (D, H, W) masks (the reference label) added to the box; None entries are skipped.
        margin: Voxels added on each side.

    Returns:
        (row_start, row_stop, col_start, col_stop), the whole plane if nothing stands out.
    """
    volumes = list(maps) + [np.asarray(m) != 0 for m in labels if m is not None]
    return content_box(volumes, margin=margin)


def agreement_codes(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each voxel's agreement of a prediction with the reference label, as a code.

    Args:
        prediction: Predicted mask, any shape (non-zero = lesion).
        reference: Reference mask of the same shape.

    Returns:
        uint8 array of that shape: 0 neither, 1 true positive (both), 2 miss (reference only),
        3 false positive (prediction only); colours in :data:`AGREEMENT_COLOURS`.
    """
    pred, ref = np.asarray(prediction) != 0, np.asarray(reference) != 0
    if pred.shape != ref.shape:
        raise ValueError(f"prediction has shape {pred.shape}, the reference {ref.shape}: give one grid")
    codes = np.zeros(pred.shape, dtype=np.uint8)
    codes[pred & ref] = 1
    codes[ref & ~pred] = 2
    codes[pred & ~ref] = 3
    return codes


def agreement_masks(codes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask, RGB in [0, 1]) per agreement class of :func:`agreement_codes`, for :func:`compose_rgb`."""
    return [(codes == k, np.array(to_rgb(c))) for k, c in AGREEMENT_COLOURS.items()]


def slice_counts(overlays: Mapping[str, np.ndarray], depth: int) -> np.ndarray:
    """Overlay voxels per slice, summed over the overlays: int64 (depth,)."""
    counts = np.zeros(depth, dtype=np.int64)
    for mask in overlays.values():
        counts += np.count_nonzero(np.asarray(mask).reshape(depth, -1), axis=1)
    return counts


def busiest_slice(overlays: Mapping[str, np.ndarray], depth: int) -> int:
    """The slice with the most overlay voxels (summed over overlays); the middle one if none."""
    counts = slice_counts(overlays, depth)
    return int(np.argmax(counts)) if counts.any() else depth // 2


def overlay_colors(names: Sequence[str], colors: Mapping[str, str] | None, alpha: float) -> dict[str, str]:
    """CSS ``rgba(...)`` colour per overlay: given colours first, then :data:`PALETTE` in order."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1]")
    colors = dict(colors or {})
    free = iter([c for c in PALETTE if c not in colors.values()] * (len(names) // len(PALETTE) + 1))
    out = {}
    for name in names:
        r, g, b = (round(255 * c) for c in to_rgb(colors[name] if name in colors else next(free)))
        out[name] = f"rgba({r},{g},{b},{alpha:g})"
    return out


def rgb_triplets(names: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Overlay name -> RGB float (3,) in [0, 1], from :func:`overlay_colors`."""
    rgba = overlay_colors(names, colors, 1.0)
    return {k: np.array([float(c) for c in v[5:-1].split(",")[:3]]) / 255.0 for k, v in rgba.items()}


def compose_rgb(
    gray: np.ndarray, masks: Sequence[tuple[np.ndarray, np.ndarray]], alpha: float = 0.5
) -> np.ndarray:
    """Blends coloured masks over a uint8 greyscale slice.

    Args:
        gray: uint8 slice (H, W).
        masks: (bool mask (H, W), RGB (3,) in [0, 1]) pairs, drawn in order.
        alpha: Opacity of each mask in [0, 1].

    Returns:
        float RGB image (H, W, 3) in [0, 1].
    """
    rgb = np.repeat(gray[..., None].astype(np.float32) / 255.0, 3, axis=-1)
    for mask, color in masks:
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(color, dtype=np.float32)
    return rgb


def montage_slices(overlays: Mapping[str, np.ndarray], depth: int, n: int) -> list[int]:
    """``n`` slices evenly spread over those holding overlay voxels (over all slices if none)."""
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    counts = slice_counts(overlays, depth)
    candidates = np.flatnonzero(counts) if counts.any() else np.arange(depth)
    picks = np.linspace(0, len(candidates) - 1, min(n, len(candidates))).round().astype(int)
    return [int(candidates[i]) for i in np.unique(picks)]
