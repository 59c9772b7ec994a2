"""Matplotlib stills: montages of axial slices with coloured overlays, cropped to the brain.

The figures are :class:`hie_core.report.viewers.display.BookFigure` objects, shown as PNG without
pyplot, so a notebook shows each exactly once. Axes are in mm (physical aspect ratio), row 0
at the top. A prediction is always shown against the reference with the one agreement coding
of :data:`hie_core.report.viewers.volumes.AGREEMENT_COLOURS`, never as a second colour painted over it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hie_core.report.viewers.display import BookFigure, plural
from hie_core.report.viewers.volumes import (
    AGREEMENT_COLOURS,
    AGREEMENT_LABELS,
    AGREEMENT_TITLE,
    agreement_codes,
    agreement_masks,
    brain_box,
    check_volumes,
    compose_rgb,
    montage_slices,
    rgb_triplets,
    window_to_uint8,
)

__all__ = ["agreement_montage", "overlay_montage"]


def _montage(
    gray: np.ndarray,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    spacing_mm: Sequence[float],
    slices: Sequence[int],
    box: tuple[int, int, int, int],
    alpha: float,
    ncols: int,
    handles: Sequence[Patch],
    title: str,
    legend_title: str | None = None,
) -> Figure:
    """Panels of ``gray`` (uint8 (D, H, W)) with (mask (D, H, W), RGB) layers, cropped to ``box``."""
    sz, sy, sx = (float(s) for s in spacing_mm)
    r0, r1, c0, c1 = box
    nrows, cols = math.ceil(len(slices) / ncols), min(ncols, len(slices))
    aspect = (r1 - r0) * sy / ((c1 - c0) * sx)
    fig = BookFigure(figsize=(3.0 * cols, 3.0 * nrows * aspect + 0.9), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    extent = ((c0 - 0.5) * sx, (c1 - 0.5) * sx, (r1 - 0.5) * sy, (r0 - 0.5) * sy)  # row 0 at the top
    for ax, k in zip(axes, slices, strict=False):
        shown = [(m[k, r0:r1, c0:c1], rgb) for m, rgb in layers]
        ax.imshow(compose_rgb(gray[k, r0:r1, c0:c1], shown, alpha), extent=extent, interpolation="nearest")
        ax.set_title(f"depth {(k + 0.5) * sz:.1f} mm", fontsize=10)  # as the viewers' sliders, not an index
    for ax in axes:
        ax.set_axis_off()
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8,
                   title=legend_title, title_fontsize=8)  # fmt: skip
    if title:
        fig.suptitle(title)
    depths = sorted((k + 0.5) * sz for k in slices)
    fig.alt = (f"{len(slices)} axial slices (depth {depths[0]:.1f} to {depths[-1]:.1f} mm), cropped to the brain"
               + (f", coloured by {legend_title or 'overlay'}: " + ", ".join(h.get_label() for h in handles)
                  if handles else "") + (f". {title}" if title else ""))  # fmt: skip
    return fig


def _check_slices(
    slices: Sequence[int] | None, masks: Mapping[str, np.ndarray], depth: int, n: int
) -> list[int]:
    slices = montage_slices(masks, depth, n) if slices is None else [int(k) for k in slices]
    if not slices or not all(0 <= k < depth for k in slices):
        raise ValueError(f"slices={slices!r} must be a non-empty list in [0, {depth})")
    return slices


def overlay_montage(
    image: np.ndarray,
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
    slices: Sequence[int] | None = None,
    n: int = 6,
    window: tuple[float, float] | None = None,
    colors: Mapping[str, str] | None = None,
    alpha: float = 0.5,
    ncols: int = 3,
    title: str = "",
) -> Figure:
    """A matplotlib montage of axial slices with coloured overlays, cropped to the brain.

    For a prediction against a reference use :func:`agreement_montage` instead.

    Args:
        image: Map (D, H, W).
        overlays: Name -> (D, H, W) mask.
        spacing_mm: (sz, sy, sx) voxel spacing in mm (axes in mm, physical aspect).
        slices: Slice indices to show; default :func:`hie_core.report.viewers.volumes.montage_slices` with ``n``.
        n: Number of slices when ``slices`` is None.
        window: (low, high) display window; default :func:`hie_core.report.viewers.volumes.default_window`.
        colors: Overlay name -> colour; :data:`hie_core.report.viewers.volumes.PALETTE` fills the rest.
        alpha: Overlay opacity in (0, 1].
        ncols: Panels per row.
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot, so it shows once), cropped to
        :func:`hie_core.report.viewers.volumes.brain_box` of the image and the overlays.
    """
    maps, masks, spacing = check_volumes({"image": image}, overlays, spacing_mm)
    slices = _check_slices(slices, masks, maps["image"].shape[0], n)
    rgb = rgb_triplets(list(masks), colors)
    handles = [Patch(color=rgb[name], label=name) for name in masks]
    box = brain_box([maps["image"]], list(masks.values()))
    gray = window_to_uint8(maps["image"], window)[0]
    layers = [(m, rgb[name]) for name, m in masks.items()]
    return _montage(gray, layers, spacing, slices, box, alpha, ncols, handles, title)


def agreement_montage(
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing_mm: Sequence[float],
    slices: Sequence[int] | None = None,
    n: int = 6,
    window: tuple[float, float] | None = None,
    alpha: float = 0.8,
    ncols: int = 3,
    title: str = "",
) -> Figure:
    """Slices of a prediction against the reference: true positives, misses and false positives.

    One colour per voxel class (:data:`hie_core.report.viewers.volumes.AGREEMENT_COLOURS`), with a legend
    naming the three; the panels are cropped to the brain and the reference.

    Args:
        image: Map (D, H, W) under the overlay (e.g. ADC).
        reference: Reference lesion mask (D, H, W).
        prediction: Predicted mask (D, H, W).
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        slices: Slice indices; default ``n`` slices spread over those with reference or prediction.
        n: Number of slices when ``slices`` is None.
        window: (low, high) display window of ``image``; default its 1st-99th brain percentile.
        alpha: Opacity of the coding in (0, 1].
        ncols: Panels per row.
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot).
    """
    maps, masks, spacing = check_volumes({"image": image}, {"ref": reference, "pred": prediction}, spacing_mm)
    slices = _check_slices(slices, masks, maps["image"].shape[0], n)
    codes = agreement_codes(masks["pred"], masks["ref"])
    handles = [Patch(color=AGREEMENT_COLOURS[k], label=AGREEMENT_LABELS[k]) for k in AGREEMENT_COLOURS]
    box = brain_box([maps["image"]], [masks["ref"]])
    gray = window_to_uint8(maps["image"], window)[0]
    fig = _montage(
        gray, agreement_masks(codes), spacing, slices, box, alpha, ncols, handles, title, AGREEMENT_TITLE
    )
    words = {1: "true-positive voxel", 2: "missed voxel", 3: "false-positive voxel"}
    counts = ", ".join(plural(int((codes == k).sum()), words[k]) for k in AGREEMENT_COLOURS if k in words)
    depths = sorted((k + 0.5) * float(spacing[0]) for k in slices)
    fig.alt = (f"{len(slices)} axial slices (depth {depths[0]:.1f} to {depths[-1]:.1f} mm), cropped to the brain, "
               f"of a prediction against the reference label; in the whole volume {counts}"
               + (f". {title}" if title else "."))  # fmt: skip
    return fig
