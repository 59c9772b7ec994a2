"""Matplotlib stills: a montage of axial slices with coloured overlays.

The figures are :class:`hie_core.report.display.BookFigure` objects, shown as PNG without
pyplot, so a notebook shows each exactly once. Axes are in mm (physical aspect ratio), row 0
at the top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hie_core.report.display import BookFigure
from hie_core.report.volumes import check_volumes, compose_rgb, montage_slices, rgb_triplets, window_to_uint8

__all__ = ["overlay_montage"]


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
    """A matplotlib montage of axial slices with coloured overlays (a still for notebooks).

    Args:
        image: Map (D, H, W).
        overlays: Name -> (D, H, W) mask.
        spacing_mm: (sz, sy, sx) voxel spacing in mm (axes in mm, physical aspect).
        slices: Slice indices to show; default :func:`montage_slices` with ``n``.
        n: Number of slices when ``slices`` is None.
        window: (low, high) display window; default :func:`default_window`.
        colors: Overlay name -> colour; :data:`PALETTE` fills the rest.
        alpha: Overlay opacity in (0, 1].
        ncols: Panels per row.
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot, so it shows once).
    """
    maps, masks, (_, sy, sx) = check_volumes({"image": image}, overlays, spacing_mm)
    depth, height, width = maps["image"].shape
    slices = montage_slices(masks, depth, n) if slices is None else [int(k) for k in slices]
    if not slices or not all(0 <= k < depth for k in slices):
        raise ValueError(f"slices={slices!r} must be a non-empty list in [0, {depth})")
    gray, _ = window_to_uint8(maps["image"], window)
    rgb = rgb_triplets(list(masks), colors)
    nrows = math.ceil(len(slices) / ncols)
    cols = min(ncols, len(slices))
    fig = BookFigure(
        figsize=(3.0 * cols, 3.0 * nrows * height * sy / (width * sx) + 0.6), layout="constrained"
    )
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    extent = (-0.5 * sx, (width - 0.5) * sx, (height - 0.5) * sy, -0.5 * sy)  # row 0 at the top
    for ax, k in zip(axes, slices, strict=False):
        shown = [(m[k], rgb[name]) for name, m in masks.items()]
        ax.imshow(compose_rgb(gray[k], shown, alpha), extent=extent, interpolation="nearest")
        ax.set_title(f"slice {k}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if masks:
        handles = [Patch(color=rgb[name], label=name) for name in masks]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
