"""The Methods chapter's two image figures: before/after preprocessing and each augmentation.

Static :class:`hie_core.report.viewers.display.BookFigure` montages (PNG, no plotly.js): a before/after
comparison needs no interaction, and the page stays under the book's weight limit. Panels are
axial slices cropped to the brain, axes in mm (physical aspect), each titled by its depth in mm
(the slice centre, ``(k + 0.5) * spacing``); text is 9 pt, at least 10 px when the figure (at
most 6.3 in, about 700 px at the figure's 110 dpi) is shown at an 800 px window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hie_core.report.viewers.display import BookFigure
from hie_core.report.viewers.volumes import (
    REFERENCE_COLOUR,
    brain_box,
    busiest_slice,
    montage_slices,
    window_to_uint8,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from hie_core.preprocess import PreprocessedCase

__all__ = ["augmentation_figure", "preprocessing_figure"]

#: Figure width (in): 693 px at the BookFigure's 110 dpi (a tight crop may add a few), under 720 px.
WIDTH_IN = 6.3
#: Text size (pt): 9 pt at 110 dpi is about 14 px at full size, 10 px or more down to 72 %.
FONT_PT = 9


def _depth(k: int, dz: float) -> float:
    """Centre depth (mm) of slice ``k`` on a grid of slice spacing ``dz`` mm."""
    return (k + 0.5) * dz


def _panel(ax: Axes, image: np.ndarray, spacing_mm: Sequence[float], box: tuple[int, int, int, int],
           title: str, mask: np.ndarray | None = None, cmap: str = "gray") -> None:  # fmt: skip
    """One uint8/float slice (H, W) cropped to ``box``, in mm, with the mask's outline if any."""
    r0, r1, c0, c1 = box
    sy, sx = float(spacing_mm[1]), float(spacing_mm[2])
    extent = (c0 * sx, c1 * sx, r1 * sy, r0 * sy)  # voxel edges: grids of one extent line up in mm
    ax.imshow(image[r0:r1, c0:c1], cmap=cmap, extent=extent, interpolation="nearest",
              vmin=0 if cmap == "gray" else -1, vmax=255 if cmap == "gray" else 1)  # fmt: skip
    if mask is not None and mask[r0:r1, c0:c1].any():
        ys, xs = (np.arange(r0, r1) + 0.5) * sy, (np.arange(c0, c1) + 0.5) * sx  # voxel centres
        ax.contour(
            xs, ys, mask[r0:r1, c0:c1].astype(float), levels=[0.5], colors=REFERENCE_COLOUR, linewidths=1
        )
    ax.set_title(title, fontsize=FONT_PT)
    ax.set_axis_off()


def preprocessing_figure(
    arrays: Mapping[str, Any], pre: PreprocessedCase, label: str, n_depths: int = 3
) -> BookFigure:
    """Native ADC (top row) against the preprocessed, z-scored ADC channel (bottom) at a few depths.

    The depths are ``n_depths`` slices of the preprocessed grid spread over its lesion slices
    (:func:`hie_core.report.viewers.volumes.montage_slices`; over all slices without a label); the native
    row shows the native slice whose centre is nearest in z. The lesion label is outlined on both
    grids, so the label's resampling can be compared.

    Args:
        arrays: :func:`hie_core.report.analysis.runs.load_case` output (``adc`` (D1, H1, W1), ``label`` or None,
            ``geometry``, ``case_id``).
        pre: The case on its training grid (``image`` (2, D2, H2, W2), ``label`` (1, D2, H2, W2) or None).
        label: The data source's short name, for the title.
        n_depths: Columns (depths) shown.
    """
    native, resampled = np.asarray(arrays["adc"], np.float32), np.asarray(pre.image[0], np.float32)
    native_label = None if arrays.get("label") is None else np.asarray(arrays["label"]) != 0
    resampled_label = None if pre.label is None else np.asarray(pre.label[0]) != 0
    spacings = (tuple(arrays["geometry"].spacing_mm), tuple(pre.geometry.spacing_mm))
    depth = resampled.shape[0]
    overlays = {} if resampled_label is None else {"label": resampled_label}
    ks = montage_slices(overlays, depth, n_depths)
    depths_mm = [_depth(k, spacings[1][0]) for k in ks]
    native_ks = [int(np.clip(np.floor(d / spacings[0][0]), 0, native.shape[0] - 1)) for d in depths_mm]
    fig = BookFigure(figsize=(WIDTH_IN, 0.6 + 2 * WIDTH_IN / len(ks) * 0.95), layout="constrained")
    axes = fig.subplots(2, len(ks), squeeze=False, sharex="col", sharey="col")  # both grids on one mm scale
    rows, records = [], []
    for r, (name, volume, mask, slices, spacing) in enumerate((
        ("native", native, native_label, native_ks, spacings[0]),
        ("preprocessed", resampled, resampled_label, ks, spacings[1]),
    )):  # fmt: skip
        gray = window_to_uint8(volume)[0]
        box = brain_box([volume], [mask], margin=3)
        for c, k in enumerate(slices):
            d = _depth(k, spacing[0])
            _panel(
                axes[r, c], gray[k], spacing, box, f"{name}, {d:.1f} mm", None if mask is None else mask[k]
            )
            lesion = 0 if mask is None else int(mask[k].sum())
            records.append({"grid": name, "shape (D×H×W)": "×".join(map(str, volume.shape)), "slice": k,
                            "depth mm": round(d, 2), "lesion voxels": lesion,
                            "mean ADC in brain": float(volume[k][volume[k] != volume.flat[0]].mean())
                            if (volume[k] != volume.flat[0]).any() else float("nan")})  # fmt: skip
        rows.append(name)
    fig.suptitle(f"{arrays['case_id']} ({label}): native {'×'.join(map(str, native.shape))} vs "
                 f"preprocessed {'×'.join(map(str, resampled.shape))}", fontsize=FONT_PT)  # fmt: skip
    fig.csv_data, fig.csv_name = pd.DataFrame(records), "methods-preprocessing"
    fig.palette = True  # 256 colours: grey levels and one outline colour, about a third fewer bytes
    fig.alt = (f"Axial ADC slices of case {arrays['case_id']} ({label}) at {len(ks)} depths "
               f"({', '.join(f'{d:.1f}' for d in depths_mm)} mm): top row the native grid "
               f"({'×'.join(map(str, native.shape))} voxels), bottom row the preprocessed, z-scored grid "
               f"({'×'.join(map(str, resampled.shape))} voxels)"
               + (", the lesion label outlined on both." if resampled_label is not None else "."))  # fmt: skip
    return fig


def augmentation_figure(
    pre: PreprocessedCase, examples: Mapping[str, np.ndarray], label: str, channel: int = 0
) -> BookFigure:
    """One row per transform: original, augmented and augmented minus original at one depth.

    The depth is the preprocessed grid's slice with the most lesion voxels (the middle slice
    without a label). Original and augmented share the original's window, so an intensity change
    shows as brightness; the difference has a window per row (the 99th percentile of its absolute
    value in the brain, given in its title), so a faint change (a mild gamma, a blur) shows.

    Args:
        pre: The case on its training grid (``image`` (2, D, H, W), ``label`` (1, D, H, W) or None).
        examples: Transform name -> augmented image (2, D, H, W)
            (:func:`hie_core.report.pages.methods_page.augmentation_examples`).
        label: The data source's short name, for the title.
        channel: 0 ADC, 1 ZADC.
    """
    if not examples:
        raise ValueError("examples is empty: give at least one augmented image")
    name = ("ADC", "ZADC")[channel]
    before = np.asarray(pre.image[channel], np.float32)
    mask = None if pre.label is None else np.asarray(pre.label[0]) != 0
    k = busiest_slice({} if mask is None else {"label": mask}, before.shape[0])
    spacing = tuple(pre.geometry.spacing_mm)
    d = _depth(k, spacing[0])
    gray, window = window_to_uint8(before)
    box = brain_box([before], [mask], margin=4)  # elastic warps move content a few voxels
    brain = before[k] != before.flat[0]
    n = len(examples)
    fig = BookFigure(figsize=(WIDTH_IN, 0.5 + n * WIDTH_IN / 3 * 0.95), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    records = []
    for r, (transform, after) in enumerate(examples.items()):
        after_k = np.asarray(after[channel], np.float32)[k]
        diff = np.nan_to_num(after_k - before[k])
        inside = np.abs(diff[brain]) if brain.any() else np.abs(diff).ravel()
        half = float(np.percentile(inside, 99)) if inside.size else 0.0
        window_text = f"±{half:.2g}" if half > 0 else "no change on this slice"
        half = half if half > 0 else 1.0
        _panel(axes[r, 0], gray[k], spacing, box, f"original, {d:.1f} mm")
        _panel(axes[r, 1], window_to_uint8(after_k, window)[0], spacing, box, f"{transform}, {d:.1f} mm")
        _panel(axes[r, 2], np.clip(diff / half, -1, 1), spacing, box, f"{transform} − original ({window_text})",
               cmap="RdBu_r")  # fmt: skip
        records.append({"transform": transform, "channel": name, "slice": k, "depth mm": round(d, 2),
                        "mean original in brain": float(before[k][brain].mean()) if brain.any() else float("nan"),
                        "mean augmented in brain": float(after_k[brain].mean()) if brain.any() else float("nan"),
                        "difference window ±": half if window_text[0] == "±" else 0.0,
                        "mean |difference| in brain": float(inside.mean()) if inside.size else 0.0})  # fmt: skip
    fig.suptitle(f"{pre.case_id} ({label}), preprocessed {name}, depth {d:.1f} mm", fontsize=FONT_PT)
    fig.csv_data, fig.csv_name = pd.DataFrame(records), "methods-augmentation"
    fig.palette = True  # 256 colours shared by the grey and red-blue panels: fewer bytes on the page
    fig.alt = (f"{n} rows, one per transform ({', '.join(examples)}), of case {pre.case_id}'s preprocessed "
               f"{name} channel ({label}) at depth {d:.1f} mm: the original, the transformed slice in the "
               "original's window, and their difference in a red-blue window of its own.")  # fmt: skip
    return fig
