"""The Results page's forest plot: every tested claim's contrast against its margin and what the design detects.

One row per row of ``results/hypotheses_<split>.csv`` (claim, contrast, metric), in one panel per
metric (its own units): the difference (first minus second) with its 95% CI, the equivalence
margin shaded (rows that have one), the difference the design could detect marked as ``|`` at
+-detectable on the row (or named in the row's text when it is wider than the panel), and the verdict as colour, marker shape and words. The colours are Okabe and Ito's
colour-blind-safe palette; nothing is told by colour alone. A static matplotlib figure
(:class:`hie_core.report.viewers.display.BookFigure`): text at 10 pt is 10 px or more at 800 px width.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from hie_core.metrics import METRIC_LABELS
from hie_core.report.analysis.hypotheses import VERDICTS
from hie_core.report.analysis.variance import NOT_TESTABLE
from hie_core.report.viewers.display import BookFigure

__all__ = ["METRIC_ORDER", "VERDICT_STYLE", "claims_forest", "forest_data", "forest_figure"]

#: verdict -> (colour, marker): Okabe-Ito colours, a different shape for each verdict
VERDICT_STYLE = {
    "supported": ("#009E73", "o"),
    "contradicted": ("#D55E00", "X"),
    "equivalent": ("#0072B2", "s"),
    "inconclusive": ("#555555", "D"),
    NOT_TESTABLE: ("#E69F00", "^"),
}
#: the panels, top to bottom; a metric not listed comes last
METRIC_ORDER = ("dice", "nsd", "masd_mm", "best_epoch")
_UNITS = {"dice": "difference in Dice", "nsd": "difference in NSD", "masd_mm": "difference in MASD (mm)",
          "best_epoch": "difference in epoch of the best checkpoint"}  # fmt: skip
_DIGITS = {"dice": 3, "nsd": 3, "masd_mm": 2, "best_epoch": 1}


def forest_data(hypotheses: pd.DataFrame, label: Callable[[str], str] = str) -> pd.DataFrame:
    """The forest plot's rows (and its CSV): claim, family, contrast in words, metric, estimate,
    CI, margin, detectable difference (``mdd``) and verdict, ordered by panel then file order.

    Args:
        hypotheses: ``results/hypotheses_<split>.csv`` as read (:data:`hie_core.report.analysis.hypotheses.HYPOTHESIS_COLUMNS`).
        label: A method id's display name.
    """
    h = hypotheses.reset_index(drop=True)

    def contrast(r) -> str:
        if r["hypothesis"] == "d":
            return f"{label(r['method'])}: trend over burden"
        return f"{label(r['method'])} vs {label(r['reference'])}"

    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    out = pd.DataFrame({
        "claim": h["hypothesis"], "family": h["family"], "contrast": h.apply(contrast, axis=1),
        "metric": h["metric"], "estimate": h["estimate"], "ci_low": h["ci_low"], "ci_high": h["ci_high"],
        "margin": h["margin"], "mdd": h["mdd"], "verdict": h["verdict"],
        "_order": [rank.get(m, len(rank)) * 1000 + i for i, m in enumerate(h["metric"])],
    })  # fmt: skip
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _limits(rows: pd.DataFrame) -> float:
    """Half-width of a panel's symmetric x range: its CIs, estimates and margins, 12% spare;
    a detectable difference counts when it is within twice that."""
    values = np.abs(rows[["estimate", "ci_low", "ci_high", "margin"]].to_numpy(dtype=float))
    span = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    mdd = np.abs(rows["mdd"].to_numpy(dtype=float))
    near = mdd[np.isfinite(mdd) & (mdd <= 2 * span)]
    return 1.12 * max(span, float(near.max()) if near.size else 0.0, 1e-9)


def forest_figure(data: pd.DataFrame, title: str = "") -> BookFigure:
    """The forest plot of :func:`forest_data`'s rows; its CSV link downloads ``data``.

    Raises:
        ValueError: ``data`` has no row.
    """
    if data.empty:
        raise ValueError("no contrast to plot: the hypotheses table is empty")
    metrics = list(dict.fromkeys(data["metric"]))
    counts = [int((data["metric"] == m).sum()) for m in metrics]
    fig = BookFigure(figsize=(7.8, 0.9 + 0.32 * sum(counts) + 0.75 * len(metrics)), layout="constrained")
    axes = fig.subplots(
        len(metrics), 1, gridspec_kw={"height_ratios": [c + 1.4 for c in counts]}, squeeze=False
    )
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        rows = data[data["metric"] == metric].reset_index(drop=True)
        half = _limits(rows)
        digits = _DIGITS.get(metric, 3)
        ys = np.arange(len(rows))[::-1]
        for y, (_, r) in zip(ys, rows.iterrows(), strict=True):
            colour, marker = VERDICT_STYLE.get(r["verdict"], ("#000000", "o"))
            if math.isfinite(r["margin"]):
                ax.fill_between(
                    [-r["margin"], r["margin"]], y - 0.42, y + 0.42, color="#0072B2", alpha=0.16, lw=0
                )
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colour, lw=2, solid_capstyle="butt")
            ax.plot([r["estimate"]], [y], marker=marker, color=colour, ms=7, mec="white", mew=0.6, ls="none")
            mdd = r["mdd"]
            note = r["verdict"]
            if math.isfinite(mdd) and mdd <= half:
                ax.plot([-mdd, mdd], [y, y], marker="|", ms=13, mew=1.6, color="black", ls="none")
            elif math.isfinite(mdd):
                note += f" (detects ±{mdd:.{digits}f}, off scale)"
            ax.text(
                1.02, y, note, transform=ax.get_yaxis_transform(), va="center", fontsize=9.5, color=colour
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(-half, half)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_yticks(
            ys, [f"{c}  {t}" for c, t in zip(rows["claim"], rows["contrast"], strict=True)], fontsize=10
        )
        ax.tick_params(axis="x", labelsize=10)
        ax.set_xlabel(_UNITS.get(metric, f"difference in {METRIC_LABELS.get(metric, metric)}"), fontsize=10)
        ax.grid(axis="x", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shown = [v for v in VERDICTS if v in set(data["verdict"])]
    handles = [
        Line2D([], [], color=VERDICT_STYLE[v][0], marker=VERDICT_STYLE[v][1], lw=2, label=v) for v in shown
    ]
    handles += [Patch(color="#0072B2", alpha=0.16, label="equivalence margin"),
                Line2D([], [], color="black", marker="|", ms=13, mew=1.6, ls="none", label="± detectable difference")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=10, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.csv_data = data
    fig.csv_name = "claims-forest"
    fig.palette = True
    fig.alt = (f"Forest plot of {len(data)} contrasts of the seed's claims: "
               + "; ".join(f"{int((data['verdict'] == v).sum())} {v}" for v in shown))  # fmt: skip
    return fig


def claims_forest(results, split: str = "test"):
    """The Results page's forest plot of ``results/hypotheses_<split>.csv`` (a markdown line when
    the study tested no claim)."""
    from hie_core.report.pages.results_page import method_label
    from hie_core.report.viewers import display

    h = results.table("hypotheses", split)
    if h.empty:
        return display.markdown(
            "No claim of the seed could be tested: the study ran none of the losses they name."
        )
    title = "Synthetic data: " if getattr(results, "synthetic", False) else ""
    return forest_figure(forest_data(h, lambda m: method_label(m, results)), title=f"{title}{split} split")
