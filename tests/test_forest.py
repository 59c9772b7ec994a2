"""The Results page's forest plot (hie_core.report.pages.forest) on a small hypotheses table written here."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from PIL import Image

from hie_core.report.pages.forest import VERDICT_STYLE, forest_data, forest_figure


def _hypotheses() -> pd.DataFrame:
    rows = [
        # hypothesis, metric, method, reference, estimate, ci_low, ci_high, margin, mdd, verdict
        ("c", "best_epoch", "tversky_hdt", "tversky", -1.5, -3.0, 0.0, 2.0, math.nan, "not testable here"),
        ("a", "masd_mm", "tversky_hdt", "tversky", -0.4, -1.2, 0.2, 0.5, 1.4, "inconclusive"),
        ("a", "dice", "tversky_hdt", "tversky", 0.001, -0.01, 0.012, 0.02, 0.015, "equivalent"),
        ("b", "dice", "tversky_hdt", "hdt", 0.35, 0.25, 0.46, 0.02, 0.29, "supported"),
        ("d", "dice", "dice", "dice", 0.03, -0.1, 0.15, math.nan, 5.0, "inconclusive"),
    ]
    cols = [
        "hypothesis",
        "metric",
        "method",
        "reference",
        "estimate",
        "ci_low",
        "ci_high",
        "margin",
        "mdd",
        "verdict",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    frame["family"] = ["secondary", "secondary", "primary", "secondary", "secondary"]
    return frame


def test_rows_are_grouped_by_metric_and_name_their_contrast() -> None:
    data = forest_data(_hypotheses(), label=str.upper)
    assert data["metric"].tolist() == [
        "dice",
        "dice",
        "dice",
        "masd_mm",
        "best_epoch",
    ]  # panels in METRIC_ORDER
    assert data["contrast"].tolist()[:3] == [
        "TVERSKY_HDT vs TVERSKY",
        "TVERSKY_HDT vs HDT",
        "DICE: trend over burden",
    ]
    assert data.loc[0, "estimate"] == 0.001 and data.loc[4, "verdict"] == "not testable here"


def test_figure_marks_margin_detectable_and_verdicts() -> None:
    fig = forest_figure(forest_data(_hypotheses()), title="Synthetic data: test split")
    dice = fig.axes[0]
    assert dice.get_xlim() == pytest.approx(
        (-0.46 * 1.12, 0.46 * 1.12)
    )  # CIs and margins; the 5.0 mdd is off scale
    texts = [t.get_text() for t in dice.texts]
    assert texts == ["equivalent", "supported", "inconclusive (detects ±5.000, off scale)"]
    ticks = [m for line in dice.get_lines() if line.get_marker() == "|" for m in line.get_xdata()]
    assert sorted(ticks) == pytest.approx(
        [-0.29, -0.015, 0.015, 0.29]
    )  # the detectable differences on the scale
    colours = {t.get_text(): t.get_color() for t in dice.texts}
    assert colours["supported"] == VERDICT_STYLE["supported"][0]
    assert len(fig.axes[1].patches) + len(fig.axes[1].collections) >= 1  # MASD's margin is shaded
    assert "2 inconclusive" in fig.alt and fig.csv_data is not None and len(fig.csv_data) == 5
    png = Image.open(io.BytesIO(fig._repr_png_()))
    assert png.mode == "P" and png.width >= 800  # 256 colours; text at 10 pt stays >= 10 px at 800 px width
    html = fig._repr_html_()
    assert 'class="hie-csv"' in html and 'download="claims-forest.csv"' in html and "Forest plot of 5" in html


def test_empty_table_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        forest_figure(forest_data(_hypotheses().iloc[:0]))
