"""Plotly slice viewers for the static book: one case, and predictions against its reference.

The book is static HTML with no kernel, so its interactivity is Plotly's: one frame per axial
slice (the D axis of a (D, H, W) array), a slider that jumps between frames (never autoplay),
buttons that switch the background map, a menu or legend that picks the overlays. The frame
machinery (panels, traces, crops, page weight) is :mod:`hie_core.report.viewers.slice_frames`.

Every view is cropped to the brain (:func:`hie_core.report.viewers.volumes.brain_box`), one crop for all
panels of a figure. A prediction is shown only against the reference, in the one agreement coding
of :data:`hie_core.report.viewers.volumes.AGREEMENT_COLOURS`, one method at a time; the reference alone is
:data:`hie_core.report.viewers.volumes.REFERENCE_COLOUR`. Lesions as objects (:mod:`hie_core.lesions`): a
reference lesion the prediction misses entirely, and a predicted lesion that touches no reference
lesion, are ringed in their colour (one voxel out, so a lesion of one voxel stands out), and the
method menu counts them (:func:`lesion_ring_codes`). A 256x256x32 case with two maps and seven
lesion-sized overlays is about 6 MB of HTML when the content fills the field of view.

Display convention (radiological): row 0 at the top, column 0 at the left; for an LPS image with
identity direction (as :mod:`hie_core.io` returns them) that is anterior up, patient right on the
viewer's left. Axes are in mm from the in-plane spacing, so the aspect ratio is physical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from hie_core.report.viewers.slice_frames import build_figure, depth_labels, make_panel, trace_indices
from hie_core.report.viewers.volumes import (
    AGREEMENT_COLOURS,
    AGREEMENT_LABELS,
    AGREEMENT_TITLE,
    REFERENCE_COLOUR,
    REFERENCE_LABEL,
    agreement_codes,
    brain_box,
    busiest_slice,
    check_volumes,
    overlay_colors,
)

__all__ = [
    "LESION_RING_CODES",
    "case_viewer",
    "lesion_ring_codes",
    "slice_viewer",
]

_AGREEMENT_ALPHA = 0.8
_NO_OVERLAY = "no overlay"


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

    The view is cropped to :func:`hie_core.report.viewers.volumes.brain_box` of the first map and the
    overlays.

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
    panel = make_panel("", images, overlays, spacing_mm, windows, np.arange(depth))
    scales = {k: [v] for k, v in overlay_colors(list(overlays), colors, alpha).items()}
    return build_figure([panel], scales, depth_labels(range(depth), spacing_mm[0]), start, title, height_px)


def _rgba(colour: str, alpha: float) -> str:
    return overlay_colors(["c"], {"c": colour}, alpha)["c"]


#: Codes added to :func:`hie_core.report.viewers.volumes.agreement_codes`: the ring around a missed reference
#: lesion (4) and around a false-positive lesion (5), drawn in the miss and false-positive colours.
LESION_RING_CODES = {4: "missed lesion (ringed)", 5: "false-positive lesion (ringed)"}
_RING_COLOURS = {4: AGREEMENT_COLOURS[2], 5: AGREEMENT_COLOURS[3]}


def _ring(mask: np.ndarray) -> np.ndarray:
    """A one-voxel ring one voxel outside ``mask`` in each axial slice (8-neighbour in-plane dilations)."""
    from scipy import ndimage

    plane = np.zeros((3, 3, 3), bool)
    plane[1] = True
    near = ndimage.binary_dilation(mask, plane)
    return ndimage.binary_dilation(near, plane) & ~near


def lesion_ring_codes(prediction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """The agreement codes of a prediction (1-3, :func:`hie_core.report.viewers.volumes.agreement_codes`) plus rings.

    Args:
        prediction: Predicted boolean mask (D, H, W).
        reference: Reference boolean mask (D, H, W).

    Returns:
        uint8 codes: 1-3 as ``agreement_codes``; on voxels that are otherwise 0, 4 on the ring around
        each reference lesion the prediction misses entirely and 5 on the ring around each
        predicted lesion that overlaps no reference lesion (:data:`LESION_RING_CODES`; lesions and
        matching as :func:`hie_core.lesions.lesion_status`), and the counts ``reference``,
        ``missed`` and ``false_positive``.
    """
    from hie_core.lesions import lesion_status

    codes = agreement_codes(prediction, reference)
    status = lesion_status(np.asarray(prediction, bool), np.asarray(reference, bool))
    free = codes == 0
    codes[free & _ring(status.false_positive)] = 5
    codes[free & _ring(status.missed)] = 4
    counts = {
        "reference": status.n_reference,
        "missed": status.n_missed,
        "false_positive": status.n_false_positive,
    }
    return codes, counts


def _menu_label(name: str, counts: dict[str, int]) -> str:
    """A method's menu entry with its lesion counts."""
    return (f"{name}: {counts['missed']} of {counts['reference']} lesions missed, "
            f"{counts['false_positive']} false-positive")  # fmt: skip


def case_viewer(
    adc: np.ndarray,
    zadc: np.ndarray,
    label: np.ndarray | None,
    spacing_mm: Sequence[float],
    predictions: Mapping[str, np.ndarray] | None = None,
    title: str = "",
    height_px: int = 680,
) -> go.Figure:
    """One case, every method's mask against the reference: one method at a time, chosen in a menu.

    ADC (left) and ZADC (right), both with the chosen method's agreement with the reference
    (:data:`hie_core.report.viewers.volumes.AGREEMENT_COLOURS`: true positive, miss, false positive; missed
    and false-positive lesions ringed, :func:`lesion_ring_codes`), the reference alone, or no
    overlay; a key under the panels names the colours, and each method's menu entry counts its
    missed and false-positive lesions. Both panels share
    one crop (:func:`hie_core.report.viewers.volumes.brain_box` of the ADC and the reference) and their
    zoom. The menu changes only which overlay is visible; slider moves never change it.

    Args:
        adc: ADC map (D, H, W), 10^-6 mm^2/s.
        zadc: ZADC map (D, H, W), z-score (shown in the fixed window [-5, 5]).
        label: Reference lesion mask (D, H, W) or None (then every predicted voxel is coded as a
            false positive).
        spacing_mm: (sz, sy, sx) voxel spacing in mm.
        predictions: Method name (as the reader reads it) -> predicted mask (D, H, W); the first is
            shown first.
        title: Figure title.
        height_px: Figure height in pixels.

    Returns:
        A two-panel figure opening on the slice with the most reference (else prediction) voxels.
    """
    predictions = dict(predictions or {})
    maps, masks, spacing = check_volumes({"ADC": adc, "ZADC": zadc}, {**predictions}, spacing_mm)
    reference = (
        np.zeros(maps["ADC"].shape, bool)
        if label is None
        else check_volumes(maps, {"r": label}, spacing)[1]["r"]
    )
    coded = {name: lesion_ring_codes(mask, reference) for name, mask in masks.items()}
    overlays = {name: codes for name, (codes, _) in coded.items()}
    colours = [*(AGREEMENT_COLOURS[k] for k in (1, 2, 3)), *_RING_COLOURS.values()]
    scales = {name: [_rgba(c, _AGREEMENT_ALPHA) for c in colours] for name in overlays}
    key = [(AGREEMENT_LABELS[k], AGREEMENT_COLOURS[k]) for k in (1, 2, 3)]
    key += [(LESION_RING_CODES[k], _RING_COLOURS[k], "square-open") for k in LESION_RING_CODES]
    labels = {name: _menu_label(name, counts) for name, (_, counts) in coded.items()}
    if label is not None:
        overlays[REFERENCE_LABEL] = reference
        scales[REFERENCE_LABEL] = [_rgba(REFERENCE_COLOUR, _AGREEMENT_ALPHA)]
        key.append((REFERENCE_LABEL + ", shown alone", REFERENCE_COLOUR))
        n_reference = next(iter(coded.values()))[1]["reference"] if coded else None
        labels[REFERENCE_LABEL] = REFERENCE_LABEL + (
            "" if n_reference is None else f": {n_reference} lesions"
        )
    depth = reference.shape[0]
    start = busiest_slice({"r": reference} if reference.any() else masks, depth)
    box = brain_box([maps["ADC"]], [reference])
    windows = {"ZADC": (-5.0, 5.0)}
    slices = np.arange(depth)
    left = make_panel("ADC", {"ADC": maps["ADC"]}, overlays, spacing, windows, slices, box)
    right = make_panel(
        "ZADC (window -5 to 5)", {"ZADC": maps["ZADC"]}, overlays, spacing, windows, slices, box
    )
    choices = [*overlays, _NO_OVERLAY]
    shown = choices[0]
    _, overlay_traces = trace_indices([left, right])
    indices = [i for i, _ in overlay_traces]
    buttons = [dict(label=labels.get(c, c), method="restyle",
                    args=[{"visible": [n == c for _, n in overlay_traces]}, indices]) for c in choices]  # fmt: skip
    selector = dict(type="dropdown", buttons=buttons, active=0, showactive=True, x=0.0, xanchor="left",
                    y=1.06, yanchor="bottom", pad=dict(l=60, t=0))  # fmt: skip
    visible = {n: n == shown for n in overlays}
    fig = build_figure([left, right], scales, depth_labels(slices, spacing[0]), start, title, height_px,
                        key=key, key_title=AGREEMENT_TITLE, visible=visible, menus=[selector])  # fmt: skip
    fig.add_annotation(text="overlay:", x=0.0, y=fig.layout.updatemenus[-1].y,
                       xref="paper", yref="paper", xanchor="left", yanchor="bottom", yshift=6, showarrow=False)  # fmt: skip
    return fig
