"""The frame machinery of the Plotly slice viewers (:mod:`hie_core.report.viewers.slices`).

Panels of cropped uint8 maps and coded uint8 overlays, their heatmap traces per frame, the linked
axes, the map buttons, the slider and the figure. Overlays are codes (0 nothing, k the overlay's
k-th colour) with a stepped colour scale that is transparent at 0, so a prediction's agreement
with the reference (three classes) costs one trace.

Page weight: backgrounds are windowed to uint8 and overlays are uint8 codes, both sent as base64
typed arrays. Each overlay is cropped per slice to its bounding box (an empty slice costs one
voxel), and every volume to the brain (:func:`hie_core.report.viewers.volumes.brain_box`), so a frame
carries only the pixels that change.

Frames and toggles: a frame updates only ``z`` (and an overlay's ``x0``/``y0``) of the traces it
names; plotly.js merges frame data into ``gd.data`` key by key, so ``visible`` set by a legend
click, a map button or a menu survives every slider move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from hie_core.report.viewers.volumes import brain_box, check_volumes, window_to_uint8

__all__ = ["GRAY", "PANEL_GAP", "Panel", "build_figure", "make_panel", "trace_indices"]

#: Grey colour scale of the background maps (uint8 0 black, 255 white).
GRAY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]
#: Horizontal gap between panels, as a fraction of the figure's plot width.
PANEL_GAP = 0.04


@dataclass(frozen=True)
class Panel:
    """One image panel: cropped uint8 backgrounds and coded overlays on one grid.

    Attributes:
        title: Panel title ("" for none).
        images: Name -> uint8 (D, h, w) cropped background; one visible at a time.
        overlays: Name -> uint8 (D, h, w) cropped codes (0 = nothing, k = the overlay's k-th colour).
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        origin_rc: (row, column) of the crop's first voxel in the full grid.
        frame_slices: Slice index of this panel shown in each frame, int (F,).
        colorscale: Plotly colour scale of the backgrounds.
    """

    title: str
    images: dict[str, np.ndarray]
    overlays: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]
    origin_rc: tuple[int, int]
    frame_slices: np.ndarray
    colorscale: list = field(default_factory=lambda: GRAY)


def make_panel(
    title: str,
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray],
    spacing_mm: Sequence[float],
    windows: Mapping[str, tuple[float, float]] | None,
    frame_slices: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
    colorscale: list | None = None,
) -> Panel:
    """Validates, windows to uint8 and crops one panel's volumes (see :class:`Panel`).

    ``overlays`` are masks (drawn as code 1) or uint8 codes. ``box`` = (row_start, row_stop,
    col_start, col_stop) of the crop; default :func:`hie_core.report.viewers.volumes.brain_box` of the
    first map and the overlays.
    """
    codes = {k: np.asarray(v) for k, v in overlays.items()}
    images, masks, spacing = check_volumes(images, codes, spacing_mm)
    r0, r1, c0, c1 = box or brain_box([next(iter(images.values()))], list(masks.values()))
    windows = windows or {}
    images8 = {k: window_to_uint8(v, windows.get(k))[0][:, r0:r1, c0:c1] for k, v in images.items()}
    coded = {k: np.where(masks[k], codes[k], 0).astype(np.uint8)[:, r0:r1, c0:c1] for k in codes}
    return Panel(
        title, images8, coded, spacing, (r0, c0), np.asarray(frame_slices, dtype=int), colorscale or GRAY
    )


def _overlay_patch(codes2d: np.ndarray, panel: Panel) -> dict:
    """The smallest uint8 patch holding a 2D overlay's codes, with its position in mm (x0, y0)."""
    rows, cols = np.nonzero(codes2d)
    if rows.size == 0:
        r0 = c0 = 0
        patch = np.zeros((1, 1), dtype=np.uint8)
    else:
        r0, c0 = int(rows.min()), int(cols.min())
        patch = codes2d[r0 : rows.max() + 1, c0 : cols.max() + 1].astype(np.uint8)
    _, sy, sx = panel.spacing_mm
    return {"z": patch, "x0": (panel.origin_rc[1] + c0) * sx, "y0": (panel.origin_rc[0] + r0) * sy}


def _code_scale(colours: Sequence[str]) -> list:
    """A discrete colour scale for codes 0..n on [zmin=0, zmax=n]: 0 transparent, k the k-th colour."""
    n = len(colours)
    scale = [[0.0, "rgba(0,0,0,0)"], [0.5 / n, "rgba(0,0,0,0)"]]
    for k, colour in enumerate(colours, start=1):
        scale += [[(k - 0.5) / n, colour], [min((k + 0.5) / n, 1.0), colour]]
    return scale


def _panel_traces(
    panel: Panel, frame: int, axis: str, scales: Mapping[str, Sequence[str]], full: bool, visible: Mapping
) -> list:
    """Heatmap traces of one panel at one frame; ``full`` adds the static styling (first draw).

    ``scales`` maps an overlay to the colours of its codes 1..n; ``visible`` an overlay to its
    first visibility (default True).
    """
    k = int(panel.frame_slices[frame])
    _, sy, sx = panel.spacing_mm
    y0, x0 = panel.origin_rc[0] * sy, panel.origin_rc[1] * sx
    shared = dict(dx=sx, dy=sy, showscale=False, xaxis="x" + axis, yaxis="y" + axis)
    traces = []
    for i, (name, vol) in enumerate(panel.images.items()):
        style = {}
        if full:
            hover = "x %{x:.1f} mm, y %{y:.1f} mm<extra>" + name + "</extra>"
            style = dict(shared, name=name, x0=x0, y0=y0, zmin=0, zmax=255, colorscale=panel.colorscale,
                         visible=i == 0, hovertemplate=hover)  # fmt: skip
        traces.append(go.Heatmap(z=vol[k], **style))
    for name, vol in panel.overlays.items():
        style = {}
        if full:
            style = dict(shared, name=name, zmin=0, zmax=len(scales[name]), hoverinfo="skip", legendgroup=name,
                         showlegend=False, colorscale=_code_scale(scales[name]), visible=visible.get(name, True))  # fmt: skip
        traces.append(go.Heatmap(**_overlay_patch(vol[k], panel), **style))
    return traces


def _axes_layout(panels: Sequence[Panel]) -> dict:
    """Side-by-side axes with a physical aspect ratio, row 0 at the top, zoom linked.

    Panels after the first share the first one's axes (``matches``), so only the first carries
    y tick labels: a later panel's labels would sit over its left neighbour's image.
    """
    width = (1.0 - PANEL_GAP * (len(panels) - 1)) / len(panels)
    layout, annotations = {}, []
    for i, panel in enumerate(panels):
        axis = "" if i == 0 else str(i + 1)
        lo = i * (width + PANEL_GAP)
        common = dict(showgrid=False, zeroline=False, constrain="domain", ticksuffix=" mm")
        layout["xaxis" + axis] = dict(domain=[lo, lo + width], anchor="y" + axis, **common)
        layout["yaxis" + axis] = dict(
            autorange="reversed", scaleanchor="x" + axis, anchor="x" + axis, **common
        )
        if i > 0:
            layout["xaxis" + axis]["matches"] = "x"
            layout["yaxis" + axis].update(matches="y", showticklabels=False)
        if panel.title:
            annotations.append(dict(text=panel.title, x=lo + width / 2, y=1.0, xref="paper", yref="paper",
                                    xanchor="center", yanchor="bottom", showarrow=False))  # fmt: skip
    layout["annotations"] = annotations
    return layout


def trace_indices(panels: Sequence[Panel]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(index, name) of every map trace and of every overlay trace, in drawing order."""
    maps, overlays, i = [], [], 0
    for panel in panels:
        maps += [(i + j, n) for j, n in enumerate(panel.images)]
        i += len(panel.images)
        overlays += [(i + j, n) for j, n in enumerate(panel.overlays)]
        i += len(panel.overlays)
    return maps, overlays


def _map_menu(panels: Sequence[Panel], titles: Mapping[str, Mapping[str, str]] | None = None) -> list[dict]:
    """One button row switching the map of every panel that has several (the same name in each).

    ``titles`` maps a button to annotation updates ({"annotations[2].text": ...}) made with it.
    """
    switched = [p for p in panels if len(p.images) > 1]
    if not switched:
        return []
    names = list(dict.fromkeys(n for p in switched for n in p.images))
    maps, _ = trace_indices(panels)
    own = {id(p): set(p.images) for p in switched}
    indices = [i for i, n in maps if any(n in own[id(p)] for p in switched)]
    in_switched = [(i, n) for i, n in maps if i in indices]
    buttons = []
    for name in names:
        visible = {"visible": [n == name for _, n in in_switched]}
        relayout = dict((titles or {}).get(name, {}))
        args = [visible, relayout, indices] if titles else [visible, indices]
        buttons.append(dict(label=name, method="update" if titles else "restyle", args=args))
    x = panels.index(switched[0]) * (1.0 - PANEL_GAP * (len(panels) - 1)) / len(panels)
    return [dict(type="buttons", direction="right", buttons=buttons, active=0, showactive=True,
                 x=x + PANEL_GAP * panels.index(switched[0]), y=1.06, xanchor="left", yanchor="bottom",
                 pad=dict(r=4, t=0))]  # fmt: skip


def depth_labels(slices: Sequence[int], slice_spacing_mm: float) -> list[str]:
    """Slider labels in mm, not slice indices: each slice's centre as its depth from the volume's
    first face, ``(k + 0.5) * sz`` ("1.5 mm", "4.5 mm" ... at 3 mm slices)."""
    return [f"{(int(k) + 0.5) * float(slice_spacing_mm):.1f} mm" for k in slices]


def _slider(labels: Sequence[str], active: int, prefix: str) -> dict:
    """A slider whose steps jump to frame ``str(f)`` with no transition (redraw for heatmaps)."""
    opts = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    steps = [dict(method="animate", label=lab, args=[[str(f)], opts]) for f, lab in enumerate(labels)]
    return dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=30), len=1.0, x=0.0)


def _legend_entry(name: str, colour: str, group: str, symbol: str = "square") -> go.Scatter:
    """A legend-only marker (no data): a filled square, or another plotly symbol (``square-open``: a ring)."""
    return go.Scatter(x=[None], y=[None], mode="markers", name=name, legendgroup=group, showlegend=True,
                      marker=dict(symbol=symbol, size=12, color=colour, line=dict(color=colour, width=2)),
                      hoverinfo="skip")  # fmt: skip


def build_figure(
    panels: Sequence[Panel],
    scales: Mapping[str, Sequence[str]],
    labels: Sequence[str],
    initial_frame: int,
    title: str,
    height_px: int,
    *,
    key: Sequence[tuple[str, ...]] | None = None,
    key_title: str = "",
    visible: Mapping[str, bool] | None = None,
    menus: Sequence[dict] = (),
    titles: Mapping[str, Mapping[str, str]] | None = None,
) -> go.Figure:
    """Assembles traces, frames (changing data only), slider, map buttons, menus and legend.

    Args:
        key: (label, colour) or (label, colour, symbol) legend entries that only explain colours
            (the agreement coding; symbol ``square-open`` for a ring); default one clickable entry per
            overlay that toggles it.
        key_title: Title of the key, drawn above its entries.
        visible: Overlay name -> its visibility on first draw (default True).
        menus: Further ``updatemenus`` (e.g. the method selector).
        titles: See :func:`_map_menu`.
    """
    visible = visible or {}
    axes = ["" if i == 0 else str(i + 1) for i in range(len(panels))]
    data = [
        t
        for p, a in zip(panels, axes, strict=True)
        for t in _panel_traces(p, initial_frame, a, scales, True, visible)
    ]
    n_data = len(data)
    if key is None:  # one legend entry per overlay, its click toggles the overlay
        names = dict.fromkeys(n for p in panels for n in p.overlays)
        data += [_legend_entry(n, scales[n][-1], n) for n in names]
        legend = dict(
            title=dict(text="Overlays (click to toggle)"), itemclick="toggle", groupclick="togglegroup"
        )
    else:
        data += [_legend_entry(entry[0], entry[1], f"key {i}", *entry[2:]) for i, entry in enumerate(key)]
        legend = dict(
            orientation="h", x=0.0, xanchor="left", yanchor="top", itemclick=False, itemdoubleclick=False
        )
    frames = [
        go.Frame(
            name=str(f),
            data=[
                t
                for p, a in zip(panels, axes, strict=True)
                for t in _panel_traces(p, f, a, scales, False, visible)
            ],
            traces=list(range(n_data)),
        )
        for f in range(len(labels))
    ]
    top, bottom = 80 + (30 if title else 0) + (20 if key is not None else 0), (200 if key is not None else 40)
    layout = go.Layout(
        title=dict(text=title, x=0.5, xanchor="center", y=0.99, yanchor="top") if title else None,
        height=height_px,
        plot_bgcolor="black",
        paper_bgcolor="white",
        margin=dict(l=50, r=20, t=top, b=bottom),
        legend=legend,
        sliders=[_slider(labels, initial_frame, "Depth ")],
        updatemenus=[*_map_menu(panels, titles), *menus],
        **_axes_layout(panels),
    )
    if key is not None:  # the key under the panels, the slider under the key, the menus over the panels
        plot_px = height_px - top - bottom
        layout.legend.y = -50 / plot_px
        layout.sliders[0].update(y=-125 / plot_px, yanchor="top", pad=dict(t=0))
        if key_title:  # above the key's entries (a legend title would push them sideways)
            layout.annotations += (dict(text=key_title, x=0.0, y=-28 / plot_px, xref="paper", yref="paper",
                                        xanchor="left", yanchor="top", showarrow=False),)  # fmt: skip
        for menu in layout.updatemenus:
            menu.y = 1.0 + 26 / plot_px
    return go.Figure(data=data, layout=layout, frames=frames)
