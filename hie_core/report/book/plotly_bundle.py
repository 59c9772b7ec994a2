"""Which plotly.js a page of the book loads: the 1.5 MB cartesian bundle where it suffices.

The installed ``plotly`` package ships the full plotly.js (4.8 MB: every trace type, maps, 3D,
WebGL). The book's figures draw scatter and heatmap traces only, which plotly.js's official
cartesian bundle (``plotly.js-cartesian-dist-min`` on npm, MIT licence: scatter, bar, box,
violin, histogram, heatmap, contour, image, pie, ternary scatter) draws as well, in 1.5 MB. A
copy of that bundle is committed as ``book/vendor/plotly-cartesian.min.js`` (no npm or network
at build time). :func:`vendor_cartesian` puts it into ``book/assets/`` only when its version is
the installed plotly's plotly.js version (the figures' JSON is written for that version);
:func:`page_bundle` picks, for one page, the cartesian bundle when it is there and every trace
of the page's figures is of a type it has, else the full one. To update the copy after an
upgrade of ``plotly``: ``npm pack plotly.js-cartesian-dist-min@<plotly.js version>`` and take
``package/plotly-cartesian.min.js`` from the archive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hie_core.io import atomic_write_bytes

__all__ = [
    "CARTESIAN_JS",
    "CARTESIAN_SOURCE",
    "CARTESIAN_TRACES",
    "bundle_version",
    "page_bundle",
    "trace_types",
    "vendor_cartesian",
]

#: the cartesian bundle's name in ``book/assets/`` (and so in ``_static/``)
CARTESIAN_JS = "plotly-cartesian.min.js"
#: where the committed copy of the cartesian bundle is, relative to the project
CARTESIAN_SOURCE = "book/vendor/plotly-cartesian.min.js"
#: the trace types the cartesian bundle draws (its README)
CARTESIAN_TRACES = frozenset(
    {
        "bar",
        "box",
        "contour",
        "heatmap",
        "histogram",
        "histogram2d",
        "histogram2dcontour",
        "image",
        "pie",
        "scatter",
        "scatterternary",
        "violin",
    }  # fmt: skip
)
_VERSION = re.compile(r"plotly\.js(?: \([^)]*\))? v(\d+\.\d+\.\d+)")
_CALL = re.compile(r"""Plotly\.(newPlot|addFrames)\(\s*(?:"[^"]*"|'[^']*')\s*,\s*""")  # up to the data


def bundle_version(path: Path) -> str | None:
    """The plotly.js version a bundle's licence header names (``"4.1.1"``), or ``None``."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        match = _VERSION.search(fh.read(400))
    return match.group(1) if match else None


def trace_types(html: str) -> set[str]:
    """The trace types of the plotly figures in a page's HTML (``scatter`` when a trace names none).

    Read from the arguments of each ``Plotly.newPlot(id, data, ...)`` and
    ``Plotly.addFrames(id, frames)`` call (the layout's template, which lists every type, is
    not read); a frame's trace without a type updates a trace of the figure, and counts as
    ``scatter``. A call whose data are not JSON counts as ``"unknown"``.
    """
    decoder = json.JSONDecoder()
    found: set[str] = set()
    for call in _CALL.finditer(html):
        try:
            data, _ = decoder.raw_decode(html, call.end())
        except ValueError:
            found.add("unknown")
            continue
        traces = (
            [t for frame in data for t in frame.get("data", [])] if call.group(1) == "addFrames" else data
        )
        found.update(str(t.get("type", "scatter")) for t in traces if isinstance(t, dict))
    return found


def page_bundle(html: str, full: str, cartesian_available: bool) -> str | None:
    """The plotly.js file a page loads: ``None`` without a plotly figure, :data:`CARTESIAN_JS`
    when it is available and draws every trace the page has, else ``full``."""
    if 'class="plotly-graph-div"' not in html:
        return None
    if cartesian_available and trace_types(html) <= CARTESIAN_TRACES:
        return CARTESIAN_JS
    return full


def vendor_cartesian(root: Path, full_bundle: Path) -> bool:
    """Copy the committed cartesian bundle to ``book/assets/`` when it matches ``full_bundle``'s
    plotly.js version (the installed plotly's); otherwise remove any stale copy.

    Returns:
        Whether the cartesian bundle is in ``book/assets/``.
    """
    root = Path(root)
    source, target = root / CARTESIAN_SOURCE, root / "book" / "assets" / CARTESIAN_JS
    version = bundle_version(full_bundle)
    if source.is_file() and version is not None and bundle_version(source) == version:
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            atomic_write_bytes(target, source.read_bytes())
        return True
    target.unlink(missing_ok=True)
    return False
