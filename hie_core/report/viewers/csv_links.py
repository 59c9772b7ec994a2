"""A "data as CSV" link under every table and figure of the book, and the CSV files behind them.

A notebook output carries its data itself: :func:`csv_link` writes the CSV into the link as a
``data:`` URI (class :data:`CSV_LINK_CLASS`, a ``download`` file name), so the executed notebook
works on its own. When the book is built (``build-finished``, :func:`write_csv_files`), each
such link's CSV becomes a file next to its page, ``<page>_data/<name>.csv``, and the link points
to it: the page stays as light as before (a plain link loads nothing), and the file downloads
offline, from ``file://`` and over HTTP alike. :func:`plotly_frame` and :func:`matplotlib_frame`
read the data a figure draws when its caller gives none.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

from hie_core.io import atomic_write_bytes as atomic_bytes
from hie_core.io import atomic_write_text

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = [
    "CSV_LINK_CLASS",
    "csv_link",
    "csv_text",
    "matplotlib_frame",
    "plain_frame",
    "plotly_frame",
    "write_csv_files",
]

#: the class of the paragraph that holds a CSV link (what the browser tests look for)
CSV_LINK_CLASS = "hie-csv"
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_LINK = re.compile(
    r'(<p class="'
    + CSV_LINK_CLASS
    + r'"><a\b[^>]*?\bhref=")data:text/csv;charset=utf-8,([^"]*)("[^>]*?\bdownload=")([^"]+)(")'
)


_IMAGE = re.compile(r'(<img src=")data:image/png;base64,([A-Za-z0-9+/=]+)("[^>]*\bclass="hie-figure")')


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index, ``\\n`` line ends, floats to 6 significant digits, NaN empty)."""
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.6g")


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a display table with HTML cells as their text: ``<br>`` a space, tags dropped,
    entities decoded, ``<wbr>`` gone (what a reader sees, for its CSV)."""

    def plain(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = _TAG.sub("", _BREAK.sub(" ", value))
        return re.sub(r"\s+", " ", html.unescape(text)).strip()

    out = frame.copy()
    out.columns = [plain(str(c)) for c in out.columns]
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(plain)
    return out


def csv_link(frame: pd.DataFrame, name: str = "", what: str = "data") -> str:
    """A paragraph with a link that downloads ``frame`` as ``<name>.csv``.

    Args:
        frame: The data (its index is not written: put what matters in a column).
        name: File name without ``.csv`` (letters, digits, ``-``, ``_``; others become ``-``);
            empty: ``data-`` and the first 8 hex digits of the CSV's SHA-1, so equal data get equal names.
        what: What the link names ("data", "table", "figure data").

    Returns:
        ``<p class="hie-csv"><a href="data:text/csv;..." download="name.csv">...</a></p>``.
    """
    text = csv_text(frame)
    stem = _NAME.sub("-", name).strip("-") or "data-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    rows = len(frame)
    label = f"Download the {html.escape(what)} as CSV ({rows:,} row{'s' if rows != 1 else ''})"
    href = "data:text/csv;charset=utf-8," + quote(text, safe="")
    return f'<p class="{CSV_LINK_CLASS}"><a href="{href}" download="{stem}.csv">{label}</a></p>'


def _column(values: Any, n: int) -> list:
    if values is None:
        return [None] * n
    arr = np.asarray(values, dtype=object).ravel().tolist()
    return (arr + [None] * n)[:n]


def plotly_frame(fig: go.Figure) -> pd.DataFrame:
    """The data a plotly figure shows first (not its animation frames), one row per point.

    Columns ``trace``, ``x``, ``y`` (``text`` when points carry one), one row per point; a
    heatmap or image as its matrix, one row per image row: ``trace``, ``y`` (the row's position
    in axis units when the trace gives ``y0``/``dy``, else its index) and one column per image
    column, named by its ``x``. Images come after the points.
    """
    rows: list[pd.DataFrame] = []
    images: list[pd.DataFrame] = []
    for i, trace in enumerate(fig.data):
        name = getattr(trace, "name", None) or f"trace {i + 1}"
        z = getattr(trace, "z", None)
        if z is not None:
            z = np.asarray(z, dtype=float)
            if z.ndim == 3:  # an RGB image: its grey value
                z = z.mean(axis=-1)
            if z.ndim != 2:
                continue
            ny, nx = z.shape
            xs = np.asarray(trace.x, dtype=float) if getattr(trace, "x", None) is not None else None
            ys = np.asarray(trace.y, dtype=float) if getattr(trace, "y", None) is not None else None
            if xs is None or len(xs) != nx:
                xs = float(getattr(trace, "x0", 0) or 0) + float(getattr(trace, "dx", 1) or 1) * np.arange(nx)
            if ys is None or len(ys) != ny:
                ys = float(getattr(trace, "y0", 0) or 0) + float(getattr(trace, "dy", 1) or 1) * np.arange(ny)
            matrix = pd.DataFrame(z, columns=[f"x={x:.4g}" for x in xs])
            matrix.insert(0, "y", np.round(ys, 4))
            matrix.insert(0, "trace", name)
            images.append(matrix)
            continue
        x, y = getattr(trace, "x", None), getattr(trace, "y", None)
        if x is None and y is None:
            continue
        n = max(len(v) for v in (x, y) if v is not None)
        part = {"trace": [name] * n, "x": _column(x, n), "y": _column(y, n)}
        text = getattr(trace, "text", None)
        if text is not None and not isinstance(text, str):
            part["text"] = _column(text, n)
        rows.append(pd.DataFrame(part))
    parts = rows + images
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"trace": [], "x": [], "y": []})


def matplotlib_frame(fig: Figure) -> pd.DataFrame:
    """The data a matplotlib figure draws: per panel its lines and scatter points (``x``, ``y``),
    its bars (``x`` the bar's centre, ``y`` its height) and its text labels (``text`` at ``x``, ``y``
    in the panel's data units); a figure of text alone (a diagram) gives its labels."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    rows = []
    for k, ax in enumerate(fig.axes):
        panel = ax.get_title() or f"panel {k + 1}"
        for line in ax.get_lines():
            label = line.get_label()
            for x, y in zip(np.ravel(line.get_xdata()), np.ravel(line.get_ydata()), strict=False):
                rows.append({"panel": panel, "series": label, "x": x, "y": y, "text": None})
        for coll in ax.collections:
            if isinstance(coll, PathCollection):
                for x, y in np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2):
                    rows.append({"panel": panel, "series": coll.get_label(), "x": x, "y": y, "text": None})
        for container in ax.containers:
            for patch in container:
                if isinstance(patch, Rectangle):
                    rows.append({"panel": panel, "series": container.get_label(),
                                 "x": patch.get_x() + patch.get_width() / 2, "y": patch.get_height(),
                                 "text": None})  # fmt: skip
        for text in ax.texts:
            if text.get_text().strip():
                x, y = text.get_position()
                rows.append({"panel": panel, "series": "label", "x": x, "y": y, "text": text.get_text()})
    for text in fig.texts:
        if text.get_text().strip():
            x, y = text.get_position()
            rows.append({"panel": "figure", "series": "label", "x": x, "y": y, "text": text.get_text()})
    frame = pd.DataFrame(rows, columns=["panel", "series", "x", "y", "text"])
    frame = frame[~frame["series"].astype(str).str.startswith("_child")] if not frame.empty else frame
    return frame


def _image_to_file(m: re.Match, folder: Path) -> str:
    import base64

    data = base64.b64decode(m.group(2))
    name = f"{hashlib.sha1(data).hexdigest()[:16]}.png"
    folder.mkdir(exist_ok=True)
    if not (folder / name).is_file():
        atomic_bytes(folder / name, data)
    return f"{m.group(1)}{folder.name}/{name}{m.group(3)}"


def _page_csv_files(page: Path) -> int:
    """One page's CSV links (and :class:`~hie_core.report.viewers.display.BookFigure` images) to files in
    ``<stem>_data/`` (see :func:`write_csv_files`)."""
    text = page.read_text(encoding="utf-8")
    if "data:text/csv" not in text and "data:image/png;base64," not in text:
        return 0
    folder = page.parent / f"{page.stem}_data"
    text = _IMAGE.sub(lambda m: _image_to_file(m, folder), text)
    used: list[str] = []

    def to_file(m: re.Match) -> str:
        stem = m.group(4)[:-4] if m.group(4).endswith(".csv") else m.group(4)
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}-{k}"
        used.append(name)
        folder.mkdir(exist_ok=True)
        atomic_write_text(folder / f"{name}.csv", unquote(html.unescape(m.group(2))))
        return f"{m.group(1)}{folder.name}/{name}.csv{m.group(3)}{name}.csv{m.group(5)}"

    new = _LINK.sub(to_file, text)
    if new != page.read_text(encoding="utf-8"):
        atomic_write_text(page, new)
    return len(used)


def write_csv_files(outdir: Path) -> int:
    """In a built book: each CSV link's data as ``<page stem>_data/<name>.csv`` beside its page,
    the link pointing there (the ``download`` name kept); return how many CSV files were written.
    A :class:`~hie_core.report.viewers.display.BookFigure`'s inline PNG (class ``hie-figure``) becomes a
    file there too (``<hash>.png``): a page then loads its images as files, 25% lighter than base64.

    Two links of a page with one name get ``-2``, ``-3``... A page is rewritten atomically.
    """
    outdir = Path(outdir)
    pages = [p for p in sorted(outdir.rglob("*.html")) if "_static" not in p.relative_to(outdir).parts]
    return sum(_page_csv_files(page) for page in pages)
