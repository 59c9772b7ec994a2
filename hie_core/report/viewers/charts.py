"""Plotly charts of numbers (not of images): training curves and Table 1 as a figure.

Every chart fills the width of the text column (no fixed width), keeps its title short or
leaves it to the caption, and puts its legend under the plot so that narrow pages keep the
plotting area.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hie_core.metrics import METRIC_LABELS
from hie_core.report.viewers.volumes import PALETTE

__all__ = [
    "HISTORY_COLUMNS",
    "SEED_DASHES",
    "log_axis_ticks",
    "table1_figure",
    "training_curves_figure",
]

#: Columns :func:`training_curves_figure` needs in each ``history.csv``.
HISTORY_COLUMNS = ("epoch", "train_loss", "selection_loss", "selection_dice")
_BOTTOM_LEGEND = dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0)


def _check_history(name: str, table: pd.DataFrame) -> None:
    missing = [c for c in HISTORY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"history of {name!r} lacks columns {missing} (needs {', '.join(HISTORY_COLUMNS)})")


#: Line styles of a method's seeds, in seed order (one colour per method, one dash per seed).
SEED_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def log_axis_ticks() -> dict:
    """Settings of a plotly log axis that label only the decades (1e-3, 0.01, 0.1, 1), no "2 5" between."""
    return dict(type="log", dtick=1, exponentformat="power", minor=dict(ticks="inside", showgrid=False))


def _seed_tables(
    tables: Sequence[pd.DataFrame] | Mapping[int, pd.DataFrame],
) -> list[tuple[str, pd.DataFrame]]:
    if isinstance(tables, Mapping):
        return [(f"seed {seed}", table) for seed, table in tables.items()]
    return [(f"seed {j}", table) for j, table in enumerate(tables)]


def training_curves_figure(
    histories: Mapping[str, Sequence[pd.DataFrame] | Mapping[int, pd.DataFrame]], log_loss: bool = True
) -> go.Figure:
    """Training curves of every method and seed: losses (left) and selection-set Dice (right).

    Args:
        histories: Method label -> its seeds' per-epoch tables (``history.csv``, columns
            :data:`HISTORY_COLUMNS`): a mapping seed -> table, or a list (seeds 0, 1, ...).
        log_loss: Plot the losses on a log axis (their scales differ by orders of magnitude; a
            loss of exactly 0 is then not drawn), labelled at the decades only.

    Returns:
        One colour per method and one line style per seed (:data:`SEED_DASHES`), the legend
        naming both ("Dice, seed 1"); per run its training loss (thin, faint), selection loss,
        selection Dice and a marker at the best selection Dice. One legend click toggles a run.
    """
    if not histories or not any(len(v) for v in histories.values()):
        raise ValueError("histories is empty")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss (thin, faint: training)", "Selection Dice"))
    for i, (name, tables) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        for j, (seed, table) in enumerate(_seed_tables(tables)):
            _check_history(name, table)
            run = f"{name}, {seed}"
            line = dict(color=color, dash=SEED_DASHES[j % len(SEED_DASHES)], width=2)
            common = dict(legendgroup=run, line=line, mode="lines", name=run)
            fig.add_scatter(
                x=table["epoch"], y=table["train_loss"], showlegend=False, row=1, col=1, opacity=0.45,
                hovertemplate=f"epoch %{{x}}<br>training loss %{{y:.4g}}<extra>{run}</extra>",
                **{**common, "line": {**line, "width": 1}},
            )  # fmt: skip
            fig.add_scatter(
                x=table["epoch"], y=table["selection_loss"], showlegend=True, row=1, col=1,
                hovertemplate=f"epoch %{{x}}<br>selection loss %{{y:.4g}}<extra>{run}</extra>", **common,
            )  # fmt: skip
            fig.add_scatter(
                x=table["epoch"], y=table["selection_dice"], showlegend=False, row=1, col=2,
                hovertemplate=f"epoch %{{x}}<br>Dice %{{y:.3f}}<extra>{run}</extra>", **common,
            )  # fmt: skip
            if table["selection_dice"].notna().any():
                best = table.loc[table["selection_dice"].idxmax()]
                fig.add_scatter(
                    x=[best["epoch"]], y=[best["selection_dice"]], name=run, showlegend=False, row=1, col=2,
                    legendgroup=run, mode="markers", marker=dict(color=color, size=9),
                    hovertemplate="best epoch %{x}<br>Dice %{y:.3f}<extra>" + run + "</extra>",
                )  # fmt: skip
    fig.update_xaxes(title_text="epoch")
    loss_axis = log_axis_ticks() if log_loss else dict(type="linear")
    fig.update_yaxes(title_text="loss", row=1, col=1, **loss_axis)
    fig.update_yaxes(range=[0, 1], title_text="Dice", row=1, col=2)
    fig.update_layout(
        height=440, legend=_BOTTOM_LEGEND, hovermode="closest", margin=dict(l=50, r=20, t=40, b=90)
    )
    return fig


def _reference_line(
    fig: go.Figure, value: float, methods: list[str], col: int, name: str, style: dict
) -> None:
    """A vertical line at ``value`` across the method rows of panel ``col``, one legend entry."""
    if not math.isfinite(value):
        return
    fig.add_scatter(
        x=[value, value], y=[methods[0], methods[-1]], mode="lines", name=name, legendgroup=name,
        showlegend=col == 1, line=style, row=1, col=col,
        hovertemplate=f"{name}: {value:.3f}<extra></extra>",
    )  # fmt: skip


def table1_figure(table1: pd.DataFrame, references: Sequence[str] = ("baseline", "ceiling")) -> go.Figure:
    """Table 1 as a figure: each method's mean and 95% CI per metric, references as lines.

    Args:
        table1: ``table1_<split>.csv`` (columns ``method`` and ``<metric>_mean``,
            ``<metric>_ci_low``, ``<metric>_ci_high`` for each of :data:`hie_core.metrics.METRIC_LABELS`).
        references: Rows drawn as vertical reference lines instead of points (when present).

    Returns:
        Three panels side by side (Dice, MASD, NSD), one row per method, the first method on top.
    """
    points = table1[~table1["method"].isin(references)]
    if points.empty:
        raise ValueError("table1 has no method rows besides the references")
    methods = points["method"].astype(str).tolist()
    fig = make_subplots(rows=1, cols=len(METRIC_LABELS), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=list(METRIC_LABELS.values()))  # fmt: skip
    styles = {"baseline": dict(color="gray", dash="dash"), "ceiling": dict(color="#2ca02c", dash="dot")}
    for col, metric in enumerate(METRIC_LABELS, start=1):
        mean = points[f"{metric}_mean"].astype(float)
        fig.add_scatter(
            x=mean, y=methods, mode="markers", name="mean [95% CI]", showlegend=col == 1, legendgroup="m",
            marker=dict(color="#1f77b4", size=9), row=1, col=col,
            error_x=dict(type="data", symmetric=False, array=points[f"{metric}_ci_high"].astype(float) - mean,
                         arrayminus=mean - points[f"{metric}_ci_low"].astype(float), thickness=1.5),
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )  # fmt: skip
        for ref in references:
            row = table1[table1["method"] == ref]
            if len(row):
                value = float(row[f"{metric}_mean"].iloc[0])
                _reference_line(fig, value, methods, col, ref, styles.get(ref, dict(color="black")))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[0, 1], row=1, col=3)
    fig.update_layout(
        height=160 + 34 * len(methods), legend=_BOTTOM_LEGEND, margin=dict(l=10, r=10, t=40, b=80)
    )
    return fig
