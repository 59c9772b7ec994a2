"""The Results page's lesion-wise section: Table 1b, detection by lesion size, volume agreement.

One call per output, each standing alone when the book folds the code away (its note names the
source, the counts and the units), read from the study's result files
(:mod:`hie_core.report.analysis.lesion_tables` writes them): :func:`table1b`, :func:`claims_table`,
:func:`detection_figure` (the share of reference lesions detected per size band, one line per
method, 95% intervals) and :func:`volume_figure` (Bland-Altman of predicted against reference
lesion volume per case, one panel per method). The pure figure builders are
:func:`detection_chart` and :func:`bland_altman_chart`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hie_core.lesions import CONNECTIVITY, MIN_LESION_ML, SIZE_BANDS
from hie_core.report.analysis.lesion_tables import SMALL_LESION_ML
from hie_core.report.analysis.results import StudyResults
from hie_core.report.pages.results_page import method_label, source_of, split_label
from hie_core.report.pages.sources import source_line
from hie_core.report.viewers import display
from hie_core.report.viewers.volumes import PALETTE

__all__ = [
    "LESION_RULES",
    "bland_altman_chart",
    "bland_altman_stats",
    "claims_table",
    "detection_chart",
    "detection_figure",
    "table1b",
    "volume_figure",
]

#: What a lesion is and how it is matched, for every note of this section.
LESION_RULES = (
    f"Lesions: {CONNECTIVITY}-connected components (face, edge or corner neighbours) of the reference label and of "
    "the prediction on each scan's native grid, "
    + (
        "every component counted (no minimum size). "
        if MIN_LESION_ML is None
        else f"components under {MIN_LESION_ML:g} mL left out. "
    )  # fmt: skip
    + "A reference lesion is "
    "detected when any predicted voxel overlaps it; a predicted lesion that overlaps no reference lesion is a "
    "false-positive lesion. Lesion-wise Dice (BraTS 2023): each reference lesion's Dice against the predicted "
    "lesions that overlap it, missed and false-positive lesions scoring 0, averaged per case."
)
_REFERENCE_STYLE = {"baseline": dict(color="gray", dash="dash"), "ceiling": dict(color="#2ca02c", dash="dot")}
_LIMITS_Z = 1.96  # Bland-Altman limits of agreement: bias +- 1.96 SD of the differences


def _provenance(results: StudyResults) -> str:
    # the device is said once, in the page's banner (study_banner), not under every table
    return source_line(source_of(results), results.config.preset)


def _ci(frame: pd.DataFrame, metric: str, digits: int = 3) -> pd.Series:
    cols = [f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high")]
    return frame[cols].apply(lambda r: display.format_ci(*r, digits=digits, html_break=True), axis=1)


def _labels(methods: Sequence[str], results: StudyResults) -> list[str]:
    return [method_label(m, results) for m in methods]


def _has(results: StudyResults, kind: str, split: str) -> bool:
    return results.has(split) and kind in results.split_tables[split]


def table1b(results: StudyResults, split: str = "test"):
    """Table 1b: per method, lesion sensitivity, F1, lesion-wise Dice, false-positive lesions, volume error [95% CI]."""
    if not _has(results, "table1b", split):
        return display.markdown(f"This study reported no lesion-wise table for the {split_label(split)}.")
    t = results.table("table1b", split)
    shown = pd.DataFrame({"method": _labels(t["method"], results), "cases with a lesion": t["n_cases"],
                          "reference lesions": t["n_ref_lesions"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}")})  # fmt: skip
    heads = {"lesion_sensitivity": "lesion sensitivity", "lesion_f1": "lesion F1", "lesion_dice": "lesion-wise Dice",
             "n_fp_lesions": "false-positive lesions per case", "volume_error_ml": "volume error (mL)",
             "abs_volume_error_ml": "absolute volume error (mL)"}  # fmt: skip
    for metric, head in heads.items():
        shown[head] = _ci(t, metric, 3 if metric.startswith("lesion") else 2)
    n_empty = int(t["empty_cases"].max()) if len(t) else 0
    if n_empty:
        shown["empty labels: false-positive lesions, volume"] = [
            "-" if not math.isfinite(n) else f"{n:.1f} per case, {v:.2f} mL"
            for n, v in zip(t["empty_fp_lesions_mean"], t["empty_fp_lesion_volume_ml_mean"], strict=True)
        ]
    note = (f"Cases with a lesion of the {split_label(split)}: mean over cases of per-case values averaged over runs, "
            "[95% CI] from resampling cases and runs. Lesion sensitivity: share of the case's reference lesions "
            "detected; lesion F1: 2 TP / (2 TP + FN + FP) over lesions; volume error: predicted minus reference "
            f"volume. {LESION_RULES} Cases with an empty reference label ({n_empty}) are left out of the means; their "
            f"false-positive lesions and volume are the last column. {_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note, html_columns=list(heads.values()))


def claims_table(results: StudyResults, split: str = "test"):
    """Claim d restated on lesions: per loss, small-lesion minus larger-lesion detection, with its test and verdict."""
    if not _has(results, "lesion_claims", split) or results.table("lesion_claims", split).empty:
        return display.markdown("Claim d could not be restated on lesions: none of the seed's losses ran.")
    c = results.table("lesion_claims", split)
    shown = pd.DataFrame({
        "loss": _labels(c["method"], results), "verdict": c["verdict"],
        "difference [95% CI]": c.apply(lambda r: display.format_ci(r["estimate"], r["ci_low"], r["ci_high"], 3,
                                                                   html_break=True, signed=True), axis=1),
        "p (Holm)": c["p_holm"].map(display.format_p),
        "detectable": c["mdd"].map(lambda v: "-" if not math.isfinite(v) else f"{v:.3f}"),
        "cases x runs": [f"{int(n)} x {int(s)}" for n, s in zip(c["n_cases"], c["n_seeds"], strict=True)],
        "detected shares": c["detail"].fillna(""), "why no verdict": c["reason"].fillna(""),
    })  # fmt: skip
    note = (f"Claim d (lesions under 1% of the brain are the hardest) restated on lesions: within each case that has "
            f"reference lesions both under {SMALL_LESION_ML:g} mL and of at least {SMALL_LESION_ML:g} mL, the share "
            "of the small ones detected minus the share of the larger ones, per run; mean over cases and runs, 95% "
            "CI from resampling cases and runs, two-sided t test with the standard error from the case, run and "
            f"case x run variance components, Holm-adjusted within this table ({display.plural(len(c), 'test')}, its own "
            "family). The claim "
            "expects a negative difference. Detectable: the difference this design detects with 80% power at the "
            f"family's strictest Holm level. {_provenance(results)}.")  # fmt: skip
    return display.table(shown, precision=3, note=note, html_columns=["difference [95% CI]"])


def detection_chart(bands: pd.DataFrame, labels: Mapping[str, str], title: str = "") -> go.Figure:
    """Share of reference lesions detected per size band, one line per method, 95% CI as error bars.

    Args:
        bands: ``lesion_bands_<split>.csv`` rows (``method``, ``size_band``, ``sensitivity``,
            ``ci_low``, ``ci_high``, ``n_lesions``).
        labels: Method -> display name (its order is the legend's); ``baseline`` and ``ceiling`` dashed.
        title: Figure title.
    """
    fig = go.Figure()
    shown = list(SIZE_BANDS)
    width = (
        0.3  # the methods' points of one band spread over this much of the axis, so intervals do not overlap
    )
    offsets = np.linspace(-width / 2, width / 2, len(labels)) if len(labels) > 1 else np.zeros(1)
    for i, (method, label) in enumerate(labels.items()):
        rows = bands[(bands["method"] == method) & bands["size_band"].isin(shown)].set_index("size_band")
        rows = rows.reindex(shown)
        if rows["sensitivity"].isna().all():
            continue
        y = rows["sensitivity"].astype(float)
        style = _REFERENCE_STYLE.get(method, dict(color=PALETTE[i % len(PALETTE)], dash="solid"))
        fig.add_scatter(
            x=np.arange(len(shown)) + offsets[i], y=y, name=label, mode="lines+markers", line=dict(width=2, **style),
            marker=dict(size=8, color=style["color"]),
            error_y=dict(type="data", symmetric=False, array=rows["ci_high"].astype(float) - y,
                         arrayminus=y - rows["ci_low"].astype(float), thickness=1.2, width=4),
            customdata=np.stack([shown, rows["n_lesions"].fillna(0).astype(int), rows["ci_low"], rows["ci_high"]],
                                axis=1),
            hovertemplate="%{customdata[0]}: %{y:.2f} [%{customdata[2]:.2f}, %{customdata[3]:.2f}] of "
                          "%{customdata[1]} lesions"
                          f"<extra>{label}</extra>",
        )  # fmt: skip
    fig.update_xaxes(title_text="reference lesion volume", tickvals=list(range(len(shown))), ticktext=shown,
                     range=[-0.5, len(shown) - 0.5], zeroline=False)  # fmt: skip
    fig.update_yaxes(title_text="share of lesions detected", range=[-0.02, 1.05])
    fig.update_layout(height=440, title=dict(text=title, x=0.5, xanchor="center") if title else None,
                      legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0.0),
                      margin=dict(l=50, r=20, t=50 if title else 20, b=110))  # fmt: skip
    return fig


def detection_figure(results: StudyResults, split: str = "test", div_id: str = "lesion-detection") -> None:
    """The detection figure of ``split``: each method's share of lesions detected per size band, with 95% CIs."""
    if not _has(results, "lesion_bands", split):
        return
    methods = [*results.methods, "baseline", "ceiling"]
    labels = {m: method_label(m, results) for m in methods}
    title = f"Lesions detected by size, {split_label(split)}, {source_of(results).short}"
    display.show(detection_chart(results.table("lesion_bands", split), labels, title), div_id)


def bland_altman_stats(reference_ml: Sequence[float], predicted_ml: Sequence[float]) -> dict[str, float]:
    """Bland-Altman of volumes: ``bias`` (mean of predicted - reference), ``sd``, ``low``/``high`` limits (bias -+ 1.96 SD)."""
    diff = np.asarray(predicted_ml, float) - np.asarray(reference_ml, float)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return {"bias": math.nan, "sd": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else math.nan
    return {
        "bias": bias,
        "sd": sd,
        "low": bias - _LIMITS_Z * sd,
        "high": bias + _LIMITS_Z * sd,
        "n": int(diff.size),
    }


def bland_altman_chart(per_case: pd.DataFrame, labels: Mapping[str, str], title: str = "") -> go.Figure:
    """Bland-Altman of predicted against reference volume, one panel per method (cases with a lesion).

    Args:
        per_case: ``per_case_<split>.csv`` rows (``method``, ``case_id``, ``n_ref``,
            ``pred_volume_ml``, ``ref_volume_ml``; runs averaged).
        labels: Method -> panel title, in panel order.
        title: Figure title.

    Returns:
        Panels sharing their axes: x the mean of the two volumes (mL, log scale), y predicted minus
        reference (mL); the bias (solid) and the limits of agreement (dashed) as lines.
    """
    methods = [m for m in labels if ((per_case["method"] == m) & per_case["ref_volume_ml"].notna()).any()]
    if not methods:
        raise ValueError("per_case has no method with reference volumes")
    cols = min(3, len(methods))
    n_rows = math.ceil(len(methods) / cols)
    fig = make_subplots(rows=n_rows, cols=cols, shared_xaxes="all", shared_yaxes="all", horizontal_spacing=0.04,
                        vertical_spacing=0.1, subplot_titles=[labels[m] for m in methods])  # fmt: skip
    for i, method in enumerate(methods):
        rows = per_case[(per_case["method"] == method) & (per_case["n_ref"] > 0)]
        ref, pred = rows["ref_volume_ml"].astype(float), rows["pred_volume_ml"].astype(float)
        mean, diff = (ref + pred) / 2, pred - ref
        s = bland_altman_stats(ref, pred)
        r, c = i // cols + 1, i % cols + 1
        fig.add_scatter(x=mean, y=diff, mode="markers", marker=dict(size=7, color=PALETTE[1], opacity=0.8),
                        showlegend=False, row=r, col=c, customdata=rows["case_id"],
                        hovertemplate="%{customdata}<br>mean %{x:.2f} mL<br>predicted - reference %{y:+.2f} mL"
                                      "<extra></extra>")  # fmt: skip
        lo, hi = float(mean.min()), float(mean.max())
        for value, dash in ((s["bias"], "solid"), (s["low"], "dash"), (s["high"], "dash")):
            if math.isfinite(value):
                fig.add_scatter(x=[lo, hi], y=[value, value], mode="lines", line=dict(color="black", dash=dash, width=1),
                                showlegend=False, row=r, col=c, hoverinfo="skip")  # fmt: skip
        if math.isfinite(s["bias"]):
            fig.add_annotation(text=f"bias {s['bias']:+.2f} mL", x=0.02, y=0.02, xref="x domain" if i == 0 else f"x{i + 1} domain",
                               yref="y domain" if i == 0 else f"y{i + 1} domain", showarrow=False, xanchor="left",
                               yanchor="bottom", font=dict(size=11))  # fmt: skip
    fig.update_xaxes(type="log", dtick=1, exponentformat="power", showticklabels=True)
    for c in range(1, cols + 1):  # the axis title under the last panel of each column
        last = max(i // cols + 1 for i in range(len(methods)) if i % cols + 1 == c)
        fig.update_xaxes(title_text="mean of the volumes (mL)", row=last, col=c)
    for r in range(1, n_rows + 1):
        fig.update_yaxes(title_text="predicted - reference (mL)", row=r, col=1)
    fig.update_layout(height=120 + 260 * n_rows, title=dict(text=title, x=0.5, xanchor="center") if title else None,
                      margin=dict(l=60, r=20, t=80 if title else 40, b=60))  # fmt: skip
    return fig


def volume_figure(results: StudyResults, split: str = "test", div_id: str = "lesion-volume") -> None:
    """The volume-agreement figure of ``split``: Bland-Altman per method (the trained ones and the baseline)."""
    per_case = results.table("per_case", split)
    if "ref_volume_ml" not in per_case.columns:
        return
    labels = {m: method_label(m, results) for m in [*results.methods, "baseline"]}
    title = f"Lesion volume agreement per case, {split_label(split)}, {source_of(results).short}"
    display.show(bland_altman_chart(per_case, labels, title), div_id)
