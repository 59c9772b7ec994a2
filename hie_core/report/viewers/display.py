"""Putting tables, figures and text into notebooks so that the static book keeps them.

The one place for presentation helpers: :func:`table` (no index column, every row and column
in view, wraps to the text column), :func:`show` / :func:`figure_html` (Plotly figures as HTML that
loads the vendored plotly.js, no CDN, no autoplay), :class:`BookFigure` (matplotlib without
pyplot), :func:`markdown` and :func:`admonition` (computed text), :func:`format_ci` (the one
"mean [95% CI]" formatter) and :func:`glue` (numbers for the book's prose).

Captions and figure numbers come from the notebook cells' ``mystnb.figure`` metadata (a
caption and a name), so each displaying cell shows exactly one output.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from hie_core.report.viewers.csv_links import csv_link, matplotlib_frame, plain_frame, plotly_frame

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "BookFigure",
    "MAX_FIGURE_WIDTH_PX",
    "admonition",
    "csv_link",
    "figure_html",
    "format_ci",
    "format_p",
    "glue",
    "markdown",
    "plotly_js_path",
    "plural",
    "show",
    "table",
]

_DIV_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: Widest fixed width a figure may ask for (the book's text column is about 700-800 px).
MAX_FIGURE_WIDTH_PX = 700


class BookFigure(Figure):
    """A matplotlib figure that a notebook shows as PNG without pyplot, with a CSV link under it.

    ``_repr_html_`` (what the book renders) is the PNG with its ``alt`` text and, under it, a link
    that downloads :attr:`csv_data` (``None``: the lines, points, bars and labels the figure
    draws, :func:`hie_core.report.viewers.csv_links.matplotlib_frame`) as ``<csv_name>.csv``;
    ``_repr_png_`` is the PNG alone.
    """

    #: The figure's data for its CSV link; ``None``: read from what the figure draws.
    csv_data: pd.DataFrame | None = None
    #: The CSV's file name without ``.csv`` (empty: named by its content's hash).
    csv_name: str = ""
    #: The image's alt text (empty: the panel titles).
    alt: str = ""
    #: A PNG of at most 256 colours (a chart of a few flat colours: about a third of the bytes).
    palette: bool = False

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        if not self.palette:
            return buffer.getvalue()
        from PIL import Image

        image = (
            Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(256, dither=Image.Dither.NONE)
        )
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()

    def _repr_html_(self) -> str:
        import base64

        png = base64.b64encode(self._repr_png_()).decode("ascii")
        titles = [t for t in (self.get_suptitle(), *(ax.get_title() for ax in self.axes)) if t]
        alt = self.alt or ("Figure: " + "; ".join(titles) if titles else "Figure")
        data = matplotlib_frame(self) if self.csv_data is None else self.csv_data
        return (f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}" class="hie-figure"/>\n'
                + csv_link(data, self.csv_name, "figure data"))  # fmt: skip


class _Html:
    """An HTML fragment with a plain-text fallback (what ``display`` shows)."""

    def __init__(self, html_text: str, text: str) -> None:
        self.data, self.text = html_text, text

    def _repr_html_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.text


def format_ci(mean: float, low: float, high: float, digits: int = 3, html_break: bool = False,
              signed: bool = False) -> str:  # fmt: skip
    """``"0.512 [0.401, 0.623]"``; ``"n/a"`` when the mean is missing, no interval when it is.

    With ``html_break`` (for :func:`table` cells) the mean and the interval are two spans that
    never break inside (``hie-num``, ``hie-ci``): the interval stays on the mean's line where
    the column allows, else it moves whole to the next; with ``signed`` every number carries its
    sign (differences).
    """
    if mean is None or not math.isfinite(float(mean)):
        return "n/a"
    sign = "+" if signed else ""
    text = f"{float(mean):{sign}.{digits}f}"
    if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
        return text
    interval = f"[{float(low):{sign}.{digits}f}, {float(high):{sign}.{digits}f}]"
    if html_break:
        return f'<span class="hie-num">{text}</span> <span class="hie-ci">{interval}</span>'
    return f"{text} {interval}"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 seed"``, ``"2 seeds"``, ``"0 cases"``: a count with its noun in the right number."""
    return f"{n:,} {word if n == 1 else (plural_form or word + 's')}"


def format_p(p: float) -> str:
    """A p-value for a table: two significant digits, "<0.001" below, "-" when no test ran."""
    if p is None or not math.isfinite(float(p)):
        return "-"
    return "<0.001" if p < 0.001 else f"{float(p):.2g}"


def table(
    frame: pd.DataFrame,
    precision: int = 3,
    note: str = "",
    scroll: bool = False,
    html_columns: Sequence[str] = (),
    wrap: bool = False,
    data: pd.DataFrame | None = None,
    csv_name: str = "",
) -> _Html:
    """A table as HTML without the index column, floats at ``precision``, NaN as "-", and under
    it a link that downloads its data as CSV (:func:`hie_core.report.viewers.csv_links.csv_link`).

    Every row and column stays in view: the table is never put in a scroll box. Cells wrap at
    spaces (never inside a :func:`format_ci` interval) and headers also inside long words
    ("Dice|Focal+|HDT", "case_|id"), so a wide table wraps to the text column; the book's
    ``book.css`` sets every cell at 14 px or more. Columns of numbers (a numeric dtype, or text
    cells that are all numbers, intervals, "n/a" or "-") are right-aligned, header included.

    Args:
        frame: The table; its index is not shown (put what matters in a column).
        precision: Digits after the point for float columns.
        note: A line of small print under the table (source, counts, abbreviations).
        scroll: A wide or long table (the name is historical): set in a smaller type
            (class ``hie-table-compact``), still whole, never in a box that scrolls.
        html_columns: Columns whose cells are HTML already (e.g. :func:`format_ci` with
            ``html_break``); every other text cell is escaped.
        wrap: Tables of sentences: cells align left (every table wraps).
        data: The data the CSV link downloads (raw numbers, full precision); ``None``: the
            shown table with its HTML cells as text.
        csv_name: The CSV's file name without ``.csv``; empty: named by its content's hash.

    Returns:
        An object that notebooks render as HTML (and print as text).
    """
    numeric = [i for i, col in enumerate(frame.columns) if _is_number_column(frame[col])]
    escaped = frame.copy()
    for col in escaped.columns:
        if col not in html_columns and not pd.api.types.is_numeric_dtype(escaped[col]):
            escaped[col] = escaped[col].map(
                lambda v: _breakable_cell(html.escape(v)) if isinstance(v, str) else v
            )
    escaped.columns = [_breakable(html.escape(str(c))) for c in escaped.columns]
    styler = escaped.style.format(precision=precision, na_rep="-").hide(axis="index")
    cell = "white-space: normal" + ("; text-align: left" if wrap else "")
    styles = [{"selector": "td", "props": f"{cell}; vertical-align: top"}]
    styles += [
        {"selector": f"td.col{i}, th.col_heading.col{i}", "props": "text-align: right"} for i in numeric
    ]
    styler = styler.set_table_styles(styles)
    body = styler.to_html()
    classes = "hie-table hie-table-compact" if scroll else "hie-table"
    parts = [f'<div class="{classes}">{body}</div>']
    if note:
        parts.append(f'<p class="hie-table-note">{html.escape(note)}</p>')
    parts.append(csv_link(plain_frame(frame) if data is None else data, csv_name, "table"))
    return _Html("\n".join(parts), frame.to_string(index=False) + (f"\n{note}" if note else ""))


_NUMBER_CELL = re.compile(r"^(?:[-+\u2212]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?\s*%?|n/a|-|<0\.\d+)"
                          r"(?:\s*\[[^\]]*\])?(?:\s*\([^)]*\))?$", re.IGNORECASE)  # fmt: skip


def _is_number_column(column: pd.Series) -> bool:
    """Numbers, or text cells that are all numbers ("0.512", "+0.01 [-0.02, 0.04]", "<0.001",
    "12 (3)", "n/a", "-") once their HTML is read as text; a column of only "-" is not."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    cells = [
        c for c in plain_frame(column.to_frame()).iloc[:, 0] if not (isinstance(c, float) and math.isnan(c))
    ]
    texts = [str(c).strip() for c in cells]
    return (
        bool(texts)
        and all(_NUMBER_CELL.match(t) for t in texts)
        and any(t not in {"-", "n/a"} for t in texts)
    )


_BREAK_AFTER = re.compile(r"(?<=[a-z])(?<!\bm)(?=[A-Z])|(?<=[+_/])(?=\w)")  # never inside a unit such as mL


def _breakable(header: str) -> str:
    """An escaped header with line-break opportunities (``<wbr>``) inside its long words:
    "DiceFocal+HDT" may break after "Dice", "Focal" and "+", "case_id" after "_" (never
    inside an HTML entity, which holds no letter before a capital)."""
    return _BREAK_AFTER.sub("<wbr>", header)


_LONG_TOKEN = re.compile(r"\S{30,}")
_CELL_BREAK_AFTER = re.compile(r"(?<=[/._])(?=\w)")


def _breakable_cell(text: str) -> str:
    """An escaped cell with line-break opportunities (``<wbr>``) after ``/``, ``.`` and ``_`` inside
    words of 30 characters or more (a file path, a dotted name), so no such word widens its table."""
    return _LONG_TOKEN.sub(lambda m: _CELL_BREAK_AFTER.sub("<wbr>", m.group(0)), text)


def markdown(text: str) -> Any:
    """Markdown for the notebook (``IPython.display.Markdown``), plain text without IPython."""
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython is a dependency
        return text
    return Markdown(text)


def admonition(title: str, text_html: str, kind: str = "note") -> None:
    """Display a boxed note (Sphinx admonition classes, so the book styles it) with a Markdown twin."""
    from IPython.display import display

    box = f'<div class="admonition {kind}"><p class="admonition-title">{html.escape(title)}</p><p>{text_html}</p></div>'
    plain = re.sub(r"<[^>]+>", "", text_html)
    display({"text/html": box, "text/markdown": f"> **{title}.** {plain}"}, raw=True)


def glue(name: str, value: Any) -> None:
    """``myst_nb.glue(name, value, display=False)`` when myst-nb is installed, else nothing."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - book extras not installed
        return
    _glue(name, value, display=False)


def figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as an HTML fragment for the static book: no plotly.js, no CDN, no autoplay.

    The figure fills the width of its container (``responsive``); a fixed layout width over
    :data:`MAX_FIGURE_WIDTH_PX` is refused, so nothing is wider than the text column. Plotly's
    mode bar (toolbar) is off: it would cover subplot titles; a double click resets the zoom.

    Args:
        fig: The figure.
        div_id: Fixed id of the figure's div (letters, digits, "-" and "_", starting with a
            letter), so rebuilding the book gives the same bytes.

    Returns:
        A ``<div>`` and a ``<script>`` that calls ``Plotly.newPlot`` (and ``Plotly.addFrames``);
        the page must load plotly.js itself (see :func:`plotly_js_path`).

    Raises:
        ValueError: A bad ``div_id``, or a layout width over :data:`MAX_FIGURE_WIDTH_PX`.
    """
    if not _DIV_ID.match(div_id):
        raise ValueError(f"div_id={div_id!r} is not a valid HTML id (letter, then letters/digits/-/_)")
    if fig.layout.width is not None and fig.layout.width > MAX_FIGURE_WIDTH_PX:
        raise ValueError(
            f"figure {div_id!r} has width {fig.layout.width} px > {MAX_FIGURE_WIDTH_PX}: leave it unset"
        )
    config = {
        "displayModeBar": False,  # the toolbar would cover subplot titles; zoom resets on double-click
        "displaylogo": False,
        "responsive": True,
        "showSendToCloud": False,
        "modeBarButtonsToRemove": ["select2d", "lasso2d"],
        "toImageButtonOptions": {"format": "png", "filename": div_id},
    }
    return fig.to_html(
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=div_id,
        auto_play=False,
        config=config,
        default_width="100%",
    )


def show(fig: go.Figure, div_id: str, plotly_mime: bool = False, data: pd.DataFrame | None = None) -> None:
    """Displays a Plotly figure as one output that myst-nb puts into the static book.

    The output carries ``text/html`` (:func:`figure_html`), which myst-nb renders in the book;
    with ``plotly_mime`` it also carries Plotly's JSON mime type, which JupyterLab and VS Code
    render live (myst-nb ignores that type when ``text/html`` is present). The JSON doubles the
    size of the executed notebook, not of the book page.

    Args:
        fig: The figure.
        div_id: Fixed div id, see :func:`figure_html`.
        plotly_mime: Also send ``application/vnd.plotly.v1+json`` for live notebooks.
        data: What the CSV link under the figure downloads (``<div_id>.csv``); ``None``: the
            data the figure shows first (:func:`hie_core.report.viewers.csv_links.plotly_frame`).
    """
    from IPython.display import display

    frame = plotly_frame(fig) if data is None else data
    bundle = {"text/html": figure_html(fig, div_id) + "\n" + csv_link(frame, div_id, "figure data")}
    if plotly_mime:
        bundle["application/vnd.plotly.v1+json"] = json.loads(fig.to_json())
    display(bundle, raw=True)


def plotly_js_path() -> Path:
    """Path of the installed plotly package's ``plotly.min.js``, for vendoring into the book.

    Raises:
        FileNotFoundError: If the plotly package ships no ``package_data/plotly.min.js``.
    """
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}")
    return path
