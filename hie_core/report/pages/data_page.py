"""The Data chapter (``notebooks/data.ipynb``): the release checked case by case.

One function per table or figure, computed from the data folder's validation report
(:func:`hie_core.data.load_dataset`), never typed by hand: per-split counts and geometry
(:func:`dataset_summary`), lesion burden per case (:func:`burden_figure`) and one case shown
map by map (:func:`sample_case_viewer`, :func:`sample_case_still`, the seed's Figures 2-5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from hie_core.data import Case, ValidationReport
from hie_core.metrics import BURDEN_STRATA, burden_stratum
from hie_core.report.viewers.charts import log_axis_ticks
from hie_core.report.viewers.display import BookFigure, plural
from hie_core.report.viewers.slices import slice_viewer
from hie_core.report.viewers.volumes import (
    PALETTE,
    REFERENCE_COLOUR,
    REFERENCE_LABEL,
    brain_box,
    busiest_slice,
    compose_rgb,
    window_to_uint8,
)

__all__ = [
    "burden_figure",
    "case_table",
    "dataset_summary",
    "sample_case",
    "sample_case_still",
    "sample_case_viewer",
]


def case_table(report: ValidationReport) -> pd.DataFrame:
    """``report.table()`` plus numeric geometry columns and the lesion-burden stratum per case."""
    table = report.table()
    geo = [r.geometry for r in report.cases]
    for i, axis in enumerate("dhw"):
        table[f"size_{axis}"] = [g.shape[i] for g in geo]
        table[f"spacing_{axis}_mm"] = [g.spacing_mm[i] for g in geo]
    table["stratum"] = [None if pd.isna(b) else burden_stratum(b) for b in table["burden_percent"]]
    return table


def _range(values: pd.Series, fmt: str = "{:.2f}") -> str:
    lo, hi = values.min(), values.max()
    return fmt.format(lo) if np.isclose(lo, hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def dataset_summary(report: ValidationReport) -> pd.DataFrame:
    """Per split (and all): cases, sizes, spacings, brain and lesion volumes, strata.

    Volumes are "median [min-max]" in mL; slices "min-median-max"; spacing ranges in mm.
    """
    table = case_table(report)
    groups = [(str(s), g) for s, g in table.groupby("split", sort=False, dropna=False)] + [("all", table)]
    rows = []
    for split, g in groups:
        in_plane = [f"{h}x{w}" for h, w in sorted(set(zip(g["size_h"], g["size_w"], strict=True)))]
        lesion = g["lesion_ml"].dropna()
        row = {
            "split": split,
            "cases": len(g),
            "in-plane sizes": ", ".join(in_plane),
            "slices (min-median-max)": f"{g['size_d'].min()}-{g['size_d'].median():g}-{g['size_d'].max()}",
            "in-plane spacing (mm)": _range(g["spacing_h_mm"]),
            "slice spacing (mm)": _range(g["spacing_d_mm"]),
            "brain volume, mL (median [range])": f"{g['brain_ml'].median():.0f} [{_range(g['brain_ml'], '{:.0f}')}]",
            "lesion volume, mL (median [range])": (
                f"{lesion.median():.1f} [{_range(lesion, '{:.1f}')}]" if len(lesion) else "-"
            ),
            "empty labels": int(g["empty_label"].fillna(False).astype(bool).sum()),
        }
        row.update({f"burden {s}": int((g["stratum"] == s).sum()) for s in BURDEN_STRATA})
        rows.append(row)
    return pd.DataFrame(rows)


def burden_figure(table: pd.DataFrame, label: str) -> go.Figure:
    """Lesion burden (% of brain volume, log axis) per split, one point per case, strata marked.

    Args:
        table: :func:`case_table` (columns ``split``, ``case_id``, ``burden_percent``).
        label: the data source, put in the title.
    """
    fig = go.Figure()
    shown = table[table["burden_percent"] > 0]
    for i, (split, g) in enumerate(shown.groupby("split", sort=False)):
        fig.add_box(
            x=g["burden_percent"], name=str(split), boxpoints="all", jitter=0.6, pointpos=0,
            marker=dict(color=PALETTE[i % len(PALETTE)], size=7), line=dict(width=1),
            hovertext=g["case_id"], hovertemplate="%{hovertext}: %{x:.3g}%<extra></extra>",
        )  # fmt: skip
    for edge in (1.0, 5.0):  # shapes take data values on a log axis, annotations log10 values
        fig.add_vline(x=edge, line=dict(dash="dash", color="gray"))
        fig.add_annotation(
            x=np.log10(edge), y=1.0, yref="paper", text=f"{edge:g}%", showarrow=False, yanchor="bottom"
        )
    n_empty = int((table["burden_percent"] == 0).sum())
    fig.update_xaxes(**log_axis_ticks(), title_text="lesion burden (% of brain volume, log scale)")
    fig.update_layout(
        title=f"Lesion burden per case, {label}; {plural(n_empty, 'empty label')} not shown",
        height=360, showlegend=False, margin=dict(l=60, r=20, t=70, b=50),
    )  # fmt: skip
    return fig


def sample_case(report: ValidationReport) -> Case:
    """The training case with the median non-zero lesion burden (lower median; ties by id).

    Falls back to all splits when the training split has no lesion, then to the first case.
    """
    ranked = sorted(
        (r for r in report.cases if r.burden_percent), key=lambda r: (r.burden_percent, r.case.case_id)
    )
    train = [r for r in ranked if r.case.split in ("train", None)] or ranked
    return train[(len(train) - 1) // 2].case if train else report.cases[0].case


def sample_case_viewer(arrays: Mapping[str, Any], label: str) -> go.Figure:
    """ADC, ZADC and label as switchable maps; the reference label as a toggleable overlay on all of them.

    The label is drawn in :data:`hie_core.report.viewers.volumes.REFERENCE_COLOUR`, the colour the reference
    has wherever it is shown alone; the view is cropped to the brain.
    """
    images = {"ADC": arrays["adc"], "ZADC": arrays["zadc"]}
    overlays = {}
    if arrays["label"] is not None:
        images["label"] = arrays["label"].astype(np.float32)
        overlays[REFERENCE_LABEL] = arrays["label"]
    return slice_viewer(
        images, overlays, arrays["geometry"].spacing_mm, title=f"{arrays['case_id']} ({label})",
        colors={REFERENCE_LABEL: REFERENCE_COLOUR}, windows={"ZADC": (-5.0, 5.0), "label": (0.0, 1.0)},
    )  # fmt: skip


def sample_case_still(arrays: Mapping[str, Any], label: str) -> BookFigure:
    """The seed's Figures 2-5 at the busiest slice: ADC, ZADC, label, label over ADC."""
    mask = arrays["label"] if arrays["label"] is not None else np.zeros(arrays["adc"].shape, bool)
    k = busiest_slice({"label": mask}, mask.shape[0])
    r0, r1, c0, c1 = brain_box([arrays["adc"]], [mask], margin=4)
    crop = (k, slice(r0, r1), slice(c0, c1))
    _, sy, sx = arrays["geometry"].spacing_mm
    adc8 = window_to_uint8(arrays["adc"])[0][crop]
    panels = {
        "ADC (10$^{-6}$ mm$^2$/s)": adc8,
        "ZADC (window -5..5)": window_to_uint8(arrays["zadc"][crop], (-5.0, 5.0))[0],
        "lesion label": mask[crop].astype(np.uint8) * 255,
        "label over ADC": compose_rgb(adc8, [(mask[crop], np.array(to_rgb(REFERENCE_COLOUR)))], 0.6),
    }
    fig = BookFigure(figsize=(12, 3.6), layout="constrained")
    extent = (c0 * sx, c1 * sx, r1 * sy, r0 * sy)
    for ax, (title, img) in zip(fig.subplots(1, 4), panels.items(), strict=True):
        ax.imshow(img, cmap="gray", extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.legend(
        handles=[Patch(color=REFERENCE_COLOUR, label=REFERENCE_LABEL)], loc="outside lower center", fontsize=8
    )
    fig.suptitle(f"{arrays['case_id']}, slice {k} - {label}", fontsize=10)
    sz = arrays["geometry"].spacing_mm[0]
    lesion = int(mask[crop].sum())
    fig.alt = (f"Four grey-scale panels of case {arrays['case_id']} ({label}) at axial slice {k} (depth "
               f"{(k + 0.5) * sz:.1f} mm), cropped to the brain ({(c1 - c0) * sx:.0f} mm wide, {(r1 - r0) * sy:.0f} mm "
               f"high): the ADC map, the ZADC map (window -5 to 5), the lesion label ("
               f"{plural(lesion, 'voxel')} on this slice) and the label in colour over the ADC map.")  # fmt: skip
    return fig
