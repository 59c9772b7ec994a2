"""Plotly slice viewers for the static book: frames, a slider, map buttons, overlay toggles.

The book is static HTML with no kernel, so its interactivity is Plotly's: one frame per axial
slice (the D axis of a (D, H, W) array), a slider that jumps between frames (never autoplay),
buttons that switch the background map, and a legend whose clicks toggle each overlay.

Page weight: backgrounds are windowed to uint8 and overlays are uint8 masks with a transparent
colour scale, both sent as base64 typed arrays. Each overlay is cropped per slice to its bounding
box (an empty slice costs one voxel), and every volume is cropped to the bounding box of the
background (skull-stripped) content, so a frame carries only the pixels that change. A 256x256x32
case with two maps and seven lesion-sized overlays is 6.1 MB of HTML when the content fills the
field of view and about 4 MB for a typical brain; overlays as large as the brain add about
1.2 MB each (the one case that can pass 10 MB).

Display convention (radiological): row 0 at the top, column 0 at the left; for an LPS image with
identity direction (as :mod:`hie_core.io` returns them) that is anterior up, patient right on the
viewer's left. Axes are in mm from the in-plane spacing, so the aspect ratio is physical.

Frames and toggles: a frame updates only ``z`` (and an overlay's ``x0``/``y0``) of the traces it
names; plotly.js merges frame data into ``gd.data`` key by key, so ``visible`` set by a legend
click or a background button survives every slider move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from hie_core.report.volumes import (
    busiest_slice,
    check_volumes,
    content_box,
    overlay_colors,
    window_to_uint8,
)

__all__ = [
    "augmentation_viewer",
    "case_viewer",
    "preprocessing_viewer",
    "slice_viewer",
]

_GRAY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]
_PANEL_GAP = 0.04


@dataclass(frozen=True)
class _Panel:
    """One image panel: cropped uint8 backgrounds and boolean overlays on one grid.

    Attributes:
        title: Panel title ("" for none).
        images: Name -> uint8 (D, h, w) cropped background; one visible at a time.
        overlays: Name -> bool (D, h, w) cropped mask.
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        origin_rc: (row, column) of the crop's first voxel in the full grid.
        frame_slices: Slice index of this panel shown in each frame, int (F,).
    """

    title: str
    images: dict[str, np.ndarray]
    overlays: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]
    origin_rc: tuple[int, int]
    frame_slices: np.ndarray


def _make_panel(
    title: str,
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray],
    spacing_mm: Sequence[float],
    windows: Mapping[str, tuple[float, float]] | None,
    frame_slices: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
) -> _Panel:
    """Validates, windows to uint8 and crops one panel's volumes (see :class:`_Panel`).

    ``box`` = (row_start, row_stop, col_start, col_stop) of the crop; default the content box.
    """
    images, overlays, spacing = check_volumes(images, overlays, spacing_mm)
    r0, r1, c0, c1 = box or content_box(list(images.values()) + list(overlays.values()))
    windows = windows or {}
    images8 = {k: window_to_uint8(v, windows.get(k))[0][:, r0:r1, c0:c1] for k, v in images.items()}
    masks = {k: v[:, r0:r1, c0:c1] for k, v in overlays.items()}
    return _Panel(title, images8, masks, spacing, (r0, c0), np.asarray(frame_slices, dtype=int))


def _overlay_patch(mask2d: np.ndarray, panel: _Panel) -> dict:
    """The smallest uint8 patch holding a 2D mask, with its position in mm (x0, y0)."""
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        r0 = c0 = 0
        patch = np.zeros((1, 1), dtype=np.uint8)
    else:
        r0, c0 = int(rows.min()), int(cols.min())
        patch = mask2d[r0 : rows.max() + 1, c0 : cols.max() + 1].astype(np.uint8)
    _, sy, sx = panel.spacing_mm
    return {"z": patch, "x0": (panel.origin_rc[1] + c0) * sx, "y0": (panel.origin_rc[0] + r0) * sy}


def _panel_traces(panel: _Panel, frame: int, axis: str, colors: Mapping[str, str], full: bool) -> list:
    """Heatmap traces of one panel at one frame; ``full`` adds the static styling (first draw)."""
    k = int(panel.frame_slices[frame])
    _, sy, sx = panel.spacing_mm
    y0, x0 = panel.origin_rc[0] * sy, panel.origin_rc[1] * sx
    shared = dict(dx=sx, dy=sy, showscale=False, xaxis="x" + axis, yaxis="y" + axis)
    traces = []
    for i, (name, vol) in enumerate(panel.images.items()):
        style = {}
        if full:
            hover = "x %{x:.1f} mm, y %{y:.1f} mm<extra>" + name + "</extra>"
            style = dict(shared, name=name, x0=x0, y0=y0, zmin=0, zmax=255, colorscale=_GRAY, visible=i == 0,
                         hovertemplate=hover)  # fmt: skip
        traces.append(go.Heatmap(z=vol[k], **style))
    for name, vol in panel.overlays.items():
        style = {}
        if full:
            style = dict(shared, name=name, zmin=0, zmax=1, hoverinfo="skip", legendgroup=name, showlegend=False,
                         colorscale=[[0.0, "rgba(0,0,0,0)"], [1.0, colors[name]]])  # fmt: skip
        traces.append(go.Heatmap(**_overlay_patch(vol[k], panel), **style))
    return traces


def _axes_layout(panels: Sequence[_Panel]) -> dict:
    """Side-by-side axes with a physical aspect ratio, row 0 at the top, zoom linked."""
    width = (1.0 - _PANEL_GAP * (len(panels) - 1)) / len(panels)
    layout, annotations = {}, []
    for i, panel in enumerate(panels):
        axis = "" if i == 0 else str(i + 1)
        lo = i * (width + _PANEL_GAP)
        common = dict(showgrid=False, zeroline=False, constrain="domain", ticksuffix=" mm")
        layout["xaxis" + axis] = dict(domain=[lo, lo + width], anchor="y" + axis, **common)
        layout["yaxis" + axis] = dict(
            autorange="reversed", scaleanchor="x" + axis, anchor="x" + axis, **common
        )
        if i > 0:
            layout["xaxis" + axis]["matches"] = "x"
            layout["yaxis" + axis]["matches"] = "y"
        if panel.title:
            annotations.append(
                dict(
                    text=panel.title,
                    x=lo + width / 2,
                    y=1.0,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="bottom",
                    showarrow=False,
                )
            )
    layout["annotations"] = annotations
    return layout


def _switch_menus(panels: Sequence[_Panel]) -> list[dict]:
    """One button row per panel with several backgrounds; each restyles only that panel's maps."""
    menus, start = [], 0
    width = (1.0 - _PANEL_GAP * (len(panels) - 1)) / len(panels)
    for i, panel in enumerate(panels):
        names = list(panel.images)
        indices = list(range(start, start + len(names)))
        start += len(names) + len(panel.overlays)
        if len(names) < 2:
            continue
        buttons = [
            dict(label=n, method="restyle", args=[{"visible": [m == n for m in names]}, indices])
            for n in names
        ]
        menus.append(
            dict(
                type="buttons",
                direction="right",
                buttons=buttons,
                active=0,
                showactive=True,
                x=i * (width + _PANEL_GAP),
                y=1.06,
                xanchor="left",
                yanchor="bottom",
                pad=dict(r=4, t=0),
            )
        )
    return menus


def _slider(labels: Sequence[str], active: int, prefix: str) -> dict:
    """A slider whose steps jump to frame ``str(f)`` with no transition (redraw for heatmaps)."""
    opts = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    steps = [dict(method="animate", label=lab, args=[[str(f)], opts]) for f, lab in enumerate(labels)]
    return dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=30), len=1.0, x=0.0)


def _build_figure(
    panels: Sequence[_Panel],
    colors: Mapping[str, str],
    labels: Sequence[str],
    initial_frame: int,
    title: str,
    height_px: int,
) -> go.Figure:
    """Assembles traces, frames (changing data only), slider, switch buttons and legend."""
    axes = ["" if i == 0 else str(i + 1) for i in range(len(panels))]
    data = [
        t for p, a in zip(panels, axes, strict=True) for t in _panel_traces(p, initial_frame, a, colors, True)
    ]
    n_data = len(data)
    for name in dict.fromkeys(n for p in panels for n in p.overlays):  # one legend entry per overlay
        data.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                legendgroup=name,
                showlegend=True,
                marker=dict(symbol="square", size=12, color=colors[name]),
                hoverinfo="skip",
            )
        )
    frames = [
        go.Frame(
            name=str(f),
            data=[
                t for p, a in zip(panels, axes, strict=True) for t in _panel_traces(p, f, a, colors, False)
            ],
            traces=list(range(n_data)),
        )
        for f in range(len(labels))
    ]
    layout = go.Layout(
        title=dict(text=title, x=0.5, xanchor="center") if title else None,
        height=height_px,
        plot_bgcolor="black",
        paper_bgcolor="white",
        margin=dict(l=50, r=20, t=110 if title else 80, b=40),
        legend=dict(
            title=dict(text="Overlays (click to toggle)"), itemclick="toggle", groupclick="togglegroup"
        ),
        sliders=[_slider(labels, initial_frame, "Slice ")],
        updatemenus=_switch_menus(panels),
        **_axes_layout(panels),
    )
    return go.Figure(data=data, layout=layout, frames=frames)


def slice_viewer(
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
    title: str = "",
    colors: Mapping[str, str] | None = None,
    initial_slice: int | None = None,
    windows: Mapping[str, tuple[float, float]] | None = None,
    alpha: float = 0.5,
    height_px: int = 640,
) -> go.Figure:
    """A slice viewer: background maps switched by buttons, overlays toggled in the legend.

    Args:
        images: Name -> (D, H, W) background map (e.g. "ADC", "ZADC"); the first is shown first.
        overlays: Name -> (D, H, W) mask (non-zero = inside), drawn in colour over the map.
        spacing_mm: (sz, sy, sx) voxel spacing in mm; sets the axes and the aspect ratio.
        title: Figure title.
        colors: Overlay name -> CSS colour ("#rrggbb"); the palette fills the rest.
        initial_slice: Slice shown first; default the slice with the most overlay voxels.
        windows: Map name -> (low, high) display window; default the 1st-99th percentile of
            the map's non-zero (brain) voxels.
        alpha: Overlay opacity in (0, 1].
        height_px: Figure height in pixels.

    Returns:
        A figure with one frame per slice (named "0".."D-1"), a slider and no autoplay.
    """
    images, overlays, spacing_mm = check_volumes(images, overlays, spacing_mm)
    depth = next(iter(images.values())).shape[0]
    start = busiest_slice(overlays, depth) if initial_slice is None else initial_slice
    if not 0 <= start < depth:
        raise ValueError(f"initial_slice={initial_slice} outside [0, {depth})")
    panel = _make_panel("", images, overlays, spacing_mm, windows, np.arange(depth))
    palette = overlay_colors(list(overlays), colors, alpha)
    return _build_figure([panel], palette, [str(k) for k in range(depth)], start, title, height_px)


def case_viewer(
    adc: np.ndarray,
    zadc: np.ndarray,
    label: np.ndarray | None,
    spacing_mm: Sequence[float],
    predictions: Mapping[str, np.ndarray] | None = None,
    title: str = "",
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """One case (the seed's Figure 6): ADC/ZADC switch, ground truth and predictions as toggles.

    Args:
        adc: ADC map (D, H, W), 10^-6 mm^2/s.
        zadc: ZADC map (D, H, W), z-score (shown in the fixed window [-5, 5]).
        label: Ground-truth lesion mask (D, H, W) or None.
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        predictions: Loss name -> predicted mask (D, H, W), each a toggle.
        title: Figure title.
        colors: Overlay name -> CSS colour; ground truth defaults to "#00ff00".

    Returns:
        The :func:`slice_viewer` figure, opening on the slice with the most overlay voxels.
    """
    overlays = {} if label is None else {"ground truth": label}
    overlays.update(predictions or {})
    colors = {"ground truth": "#00ff00", **(colors or {})}
    return slice_viewer(
        {"ADC": adc, "ZADC": zadc}, overlays, spacing_mm, title, colors, windows={"ZADC": (-5.0, 5.0)}
    )


def augmentation_viewer(
    before: np.ndarray,
    afters: Mapping[str, np.ndarray],
    spacing_mm: Sequence[float],
    title: str = "",
    initial_slice: int | None = None,
) -> go.Figure:
    """Before (left) and after (right, switched by buttons) an augmentation, one shared slider.

    Args:
        before: Original image (D, H, W).
        afters: Augmentation name -> augmented image (D, H, W) on the same grid.
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        title: Figure title.
        initial_slice: First slice shown; default the middle slice.

    Returns:
        A two-panel figure; every image uses the window of ``before``, so intensity changes show.
    """
    if not afters:
        raise ValueError("afters is empty: give at least one augmented image")
    check_volumes({"before": before, **afters}, {}, spacing_mm)
    depth = np.shape(before)[0]
    window = window_to_uint8(before)[1]
    box = content_box([np.asarray(before)], margin=4)  # elastic warps move content a few voxels
    slices = np.arange(depth)
    left = _make_panel("before", {"before": before}, {}, spacing_mm, {"before": window}, slices, box)
    right = _make_panel("after", afters, {}, spacing_mm, dict.fromkeys(afters, window), slices, box)
    start = depth // 2 if initial_slice is None else initial_slice
    return _build_figure([left, right], {}, [str(k) for k in slices], start, title, 560)


def preprocessing_viewer(
    native: np.ndarray,
    native_spacing_mm: Sequence[float],
    resampled: np.ndarray,
    resampled_spacing_mm: Sequence[float],
    native_label: np.ndarray | None = None,
    resampled_label: np.ndarray | None = None,
    title: str = "",
) -> go.Figure:
    """Native (left) and resampled (right) grids of one map, matched by slice position in mm.

    Both grids are assumed to share their origin and physical extent (the resampling keeps the
    extent). The slider runs over the grid with more slices; the other panel shows its slice
    whose centre is nearest in z.

    Args:
        native: Map on the native grid (D1, H1, W1).
        native_spacing_mm: (sz, sy, sx) of the native grid in mm.
        resampled: The same map resampled (D2, H2, W2).
        resampled_spacing_mm: (sz, sy, sx) of the resampled grid in mm.
        native_label: Optional lesion mask on the native grid (D1, H1, W1).
        resampled_label: Optional lesion mask on the resampled grid (D2, H2, W2); both labels
            share one legend toggle, so label resampling distortion can be compared.
        title: Figure title.

    Returns:
        A two-panel figure with one frame per slice of the finer grid in z.
    """
    grids = [(native, native_spacing_mm, native_label), (resampled, resampled_spacing_mm, resampled_label)]
    checked = [check_volumes({"map": v}, {} if m is None else {"label": m}, s) for v, s, m in grids]
    depths = [c[0]["map"].shape[0] for c in checked]
    dz = [c[2][0] for c in checked]
    driver = int(np.argmax(depths))
    centres_mm = (np.arange(depths[driver]) + 0.5) * dz[driver]
    panels = []
    for i, (images, overlays, spacing) in enumerate(checked):
        frame_slices = np.clip(np.floor(centres_mm / dz[i]), 0, depths[i] - 1).astype(int)  # nearest centre
        panels.append(_make_panel(["native", "resampled"][i], images, overlays, spacing, None, frame_slices))
    labels = [f"{k} ({centres_mm[k]:.1f} mm)" for k in range(depths[driver])]
    counts = [
        sum(int(m[p.frame_slices[f]].sum()) for p in panels for m in p.overlays.values())
        for f in range(depths[driver])
    ]
    start = int(np.argmax(counts)) if any(counts) else depths[driver] // 2
    return _build_figure(panels, overlay_colors(["label"], None, 0.5), labels, start, title, 560)
