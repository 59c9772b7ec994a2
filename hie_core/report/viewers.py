"""Showing slices and figures: array helpers, HTML embedding, a live viewer, a matplotlib montage.

:mod:`hie_core.report.figures` builds the book's Plotly figures from the helpers here (windowing to
uint8, content crop, initial slice, overlay colours); :func:`figure_html` and :func:`show` put
them into notebooks and the static book, which loads plotly.js from :func:`plotly_js_path`.
:func:`live_viewer` is for a running kernel (JupyterLab / VS Code; a static book shows only its
last still) and :func:`overlay_montage` makes a matplotlib still of example slices.

Display convention (radiological): row 0 at the top, column 0 at the left; for an LPS image with
identity direction (as :mod:`hie_core.io` returns them) that is anterior up, patient right on the
viewer's left. Pixels are drawn with their in-plane spacing, so the aspect ratio is physical.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "PALETTE",
    "LiveViewer",
    "busiest_slice",
    "check_volumes",
    "content_box",
    "default_window",
    "figure_html",
    "live_viewer",
    "overlay_colors",
    "overlay_montage",
    "plotly_js_path",
    "show",
    "window_to_uint8",
]

# Overlay colours (ColorBrewer Set1 without green, which is kept for the ground truth).
_DIV_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
PALETTE = ("#e41a1c", "#377eb8", "#ff7f00", "#984ea3", "#ffff33", "#a65628", "#f781bf", "#00ffff", "#999999")


def check_volumes(
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], tuple[float, float, float]]:
    """Validates maps and masks on one (D, H, W) grid.

    Args:
        images: Name -> (D, H, W) map; at least one.
        overlays: Name -> (D, H, W) mask; non-zero means inside.
        spacing_mm: (sz, sy, sx) voxel spacing in mm, all finite and positive.

    Returns:
        (float32 maps, bool masks, spacing as floats).

    Raises:
        ValueError: On an empty ``images``, a non-3D or mismatched shape, or a bad spacing.
    """
    if not images:
        raise ValueError("images is empty: give at least one (D, H, W) map")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm={spacing_mm!r} must be 3 finite positive numbers (sz, sy, sx)")
    maps = {k: np.asarray(v, dtype=np.float32) for k, v in images.items()}
    shape = next(iter(maps.values())).shape
    if len(shape) != 3 or min(shape) == 0:
        raise ValueError(f"images must be non-empty (D, H, W) arrays, got shape {shape}")
    masks = {k: np.asarray(v) != 0 for k, v in (overlays or {}).items()}
    for name, array in {**maps, **masks}.items():
        if array.shape != shape:
            raise ValueError(f"{name!r} has shape {array.shape}, expected {shape} like the first map")
    return maps, masks, spacing  # type: ignore[return-value]


def default_window(volume: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """Display window: percentiles of the brain voxels of a map.

    Brain voxels are the finite voxels whose value differs from the background, taken as the
    value of voxel (0, 0, 0) (0 for skull-stripped ADC, a constant after z-scoring). Falls back
    to all finite voxels, then to (0, 1).

    Args:
        volume: Map (D, H, W).
        percentiles: (low, high) percentiles in [0, 100].

    Returns:
        (low, high) with high > low.
    """
    volume = np.asarray(volume, dtype=np.float32)
    finite = np.isfinite(volume)
    values = volume[finite & (volume != volume.flat[0])]
    if values.size == 0:
        values = volume[finite]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, percentiles))
    return (low, high) if high > low else (low, low + 1.0)


def window_to_uint8(
    volume: np.ndarray, window: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """Maps a window linearly to 0..255 (clipped; NaN -> 0).

    Args:
        volume: Map of any shape.
        window: (low, high) in the map's units; default :func:`default_window`.

    Returns:
        (uint8 array of the same shape, the window used).
    """
    window = default_window(volume) if window is None else (float(window[0]), float(window[1]))
    low, high = window
    if not high > low:
        raise ValueError(f"window={window!r} needs high > low")
    scaled = (np.asarray(volume, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.nan_to_num(np.clip(np.rint(scaled), 0, 255), nan=0.0).astype(np.uint8), window


def content_box(volumes: Sequence[np.ndarray], margin: int = 2) -> tuple[int, int, int, int]:
    """In-plane bounding box of everything that differs from the background, over all slices.

    Args:
        volumes: (D, H, W) maps (background = value of voxel (0, 0, 0)) or bool masks.
        margin: Voxels added on each side.

    Returns:
        (row_start, row_stop, col_start, col_stop), the whole plane if nothing stands out.
    """
    height, width = np.shape(volumes[0])[1:]
    content = np.zeros((height, width), dtype=bool)
    for volume in volumes:
        volume = np.asarray(volume)
        inside = volume if volume.dtype == bool else np.isfinite(volume) & (volume != volume.flat[0])
        content |= inside.any(axis=0)
    rows, cols = np.nonzero(content)
    if rows.size == 0:
        return 0, height, 0, width
    return (
        max(int(rows.min()) - margin, 0), min(int(rows.max()) + 1 + margin, height),
        max(int(cols.min()) - margin, 0), min(int(cols.max()) + 1 + margin, width),
    )  # fmt: skip


def busiest_slice(overlays: Mapping[str, np.ndarray], depth: int) -> int:
    """The slice with the most overlay voxels (summed over overlays); the middle one if none."""
    counts = np.zeros(depth, dtype=np.int64)
    for mask in overlays.values():
        counts += np.count_nonzero(np.asarray(mask).reshape(depth, -1), axis=1)
    return int(np.argmax(counts)) if counts.any() else depth // 2


def overlay_colors(names: Sequence[str], colors: Mapping[str, str] | None, alpha: float) -> dict[str, str]:
    """CSS ``rgba(...)`` colour per overlay: given colours first, then :data:`PALETTE` in order."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1]")
    colors = dict(colors or {})
    free = iter([c for c in PALETTE if c not in colors.values()] * (len(names) // len(PALETTE) + 1))
    out = {}
    for name in names:
        r, g, b = (round(255 * c) for c in to_rgb(colors[name] if name in colors else next(free)))
        out[name] = f"rgba({r},{g},{b},{alpha:g})"
    return out


def _rgb_triplets(names: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Overlay name -> RGB float (3,) in [0, 1], from :func:`overlay_colors`."""
    rgba = overlay_colors(names, colors, 1.0)
    return {k: np.array([float(c) for c in v[5:-1].split(",")[:3]]) / 255.0 for k, v in rgba.items()}


def compose_rgb(
    gray: np.ndarray, masks: Sequence[tuple[np.ndarray, np.ndarray]], alpha: float = 0.5
) -> np.ndarray:
    """Blends coloured masks over a uint8 greyscale slice.

    Args:
        gray: uint8 slice (H, W).
        masks: (bool mask (H, W), RGB (3,) in [0, 1]) pairs, drawn in order.
        alpha: Opacity of each mask in [0, 1].

    Returns:
        float RGB image (H, W, 3) in [0, 1].
    """
    rgb = np.repeat(gray[..., None].astype(np.float32) / 255.0, 3, axis=-1)
    for mask, color in masks:
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(color, dtype=np.float32)
    return rgb


class LiveViewer(widgets.VBox):
    """ipywidgets slice viewer: slice slider, map dropdown, window slider, overlay checkboxes.

    The slice is composed in NumPy and shown as a PNG in an ``ipywidgets.Image`` (no Output
    capture, so it also renders outside a kernel's display hooks). ``displayed_slice`` and
    ``displayed_rgb`` hold what is on screen.
    """

    def __init__(
        self,
        images: Mapping[str, np.ndarray],
        overlays: Mapping[str, np.ndarray] | None,
        spacing_mm: Sequence[float],
        colors: Mapping[str, str] | None = None,
        alpha: float = 0.5,
        initial_slice: int | None = None,
        width_px: int = 480,
    ) -> None:
        self._maps, self._masks, self._spacing = check_volumes(images, overlays, spacing_mm)
        self._alpha = alpha
        self._colors = _rgb_triplets(list(self._masks), colors)
        self._windows = {k: default_window(v) for k, v in self._maps.items()}
        depth, height, width = next(iter(self._maps.values())).shape
        start = busiest_slice(self._masks, depth) if initial_slice is None else initial_slice
        if not 0 <= start < depth:
            raise ValueError(f"initial_slice={initial_slice} outside [0, {depth})")
        self.slice_slider = widgets.IntSlider(value=start, min=0, max=depth - 1, description="slice")
        self.image_dropdown = widgets.Dropdown(options=list(self._maps), description="map")
        self.window_slider = widgets.FloatRangeSlider(description="window", readout_format=".4g")
        self._set_window_range(self.image_dropdown.value)
        self.overlay_checkboxes = {
            n: widgets.Checkbox(value=True, description=n, indent=False) for n in self._masks
        }
        aspect = (height * self._spacing[1]) / (width * self._spacing[2])
        self.image = widgets.Image(format="png", width=str(width_px), height=str(round(width_px * aspect)))
        self.displayed_slice = -1
        self.displayed_rgb = np.zeros((height, width, 3), dtype=np.float32)
        self.image_dropdown.observe(self._on_map_change, names="value")
        for control in [self.slice_slider, self.window_slider, *self.overlay_checkboxes.values()]:
            control.observe(self.update, names="value")
        controls = [widgets.HBox([self.image_dropdown, self.slice_slider]), self.window_slider]
        super().__init__(
            children=[*controls, widgets.HBox(list(self.overlay_checkboxes.values())), self.image]
        )
        self.update()

    def _set_window_range(self, name: str) -> None:
        """Puts the window slider on map ``name``: its value range and its last window."""
        values = self._maps[name][np.isfinite(self._maps[name])]
        low, high = self._windows[name]
        low_end = min(float(values.min()), low) if values.size else low
        high_end = max(float(values.max()), high) if values.size else high
        with self.window_slider.hold_trait_notifications():
            self.window_slider.max = high_end
            self.window_slider.min = low_end
            self.window_slider.step = (high_end - low_end) / 500
            self.window_slider.value = (low, high)

    def _on_map_change(self, change: dict) -> None:
        """Keeps each map's window, restores the new map's window, redraws."""
        self._windows[change["old"]] = tuple(self.window_slider.value)
        self._set_window_range(change["new"])
        self.update()

    def update(self, change: dict | None = None) -> None:
        """Redraws the current slice with the current map, window and overlays."""
        k = self.slice_slider.value
        low, high = self.window_slider.value
        gray, _ = window_to_uint8(self._maps[self.image_dropdown.value][k], (low, max(high, low + 1e-6)))
        shown = [(m[k], self._colors[n]) for n, m in self._masks.items() if self.overlay_checkboxes[n].value]
        self.displayed_rgb = compose_rgb(gray, shown, self._alpha)
        self.displayed_slice = k
        buffer = io.BytesIO()
        from PIL import Image

        Image.fromarray(np.rint(self.displayed_rgb * 255).astype(np.uint8)).save(buffer, format="PNG")
        self.image.value = buffer.getvalue()


def live_viewer(
    images: Mapping[str, np.ndarray],
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
    colors: Mapping[str, str] | None = None,
    initial_slice: int | None = None,
) -> LiveViewer:
    """A live slice viewer widget for JupyterLab / VS Code (see :class:`LiveViewer`).

    Args:
        images: Name -> (D, H, W) map, chosen in a dropdown.
        overlays: Name -> (D, H, W) mask, each with a checkbox.
        spacing_mm: (sz, sy, sx) voxel spacing in mm (sets the aspect ratio).
        colors: Overlay name -> colour; :data:`PALETTE` fills the rest.
        initial_slice: First slice; default the slice with the most overlay voxels.

    Returns:
        The widget; in a static book only its last still shows.
    """
    return LiveViewer(images, overlays, spacing_mm, colors, initial_slice=initial_slice)


class BookFigure(Figure):
    """A matplotlib figure that a notebook shows as PNG without pyplot (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return buffer.getvalue()


def montage_slices(overlays: Mapping[str, np.ndarray], depth: int, n: int) -> list[int]:
    """``n`` slices evenly spread over those holding overlay voxels (over all slices if none)."""
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    counts = np.zeros(depth, dtype=np.int64)
    for mask in overlays.values():
        counts += np.count_nonzero(np.asarray(mask).reshape(depth, -1), axis=1)
    candidates = np.flatnonzero(counts) if counts.any() else np.arange(depth)
    picks = np.linspace(0, len(candidates) - 1, min(n, len(candidates))).round().astype(int)
    return [int(candidates[i]) for i in np.unique(picks)]


def overlay_montage(
    image: np.ndarray,
    overlays: Mapping[str, np.ndarray] | None,
    spacing_mm: Sequence[float],
    slices: Sequence[int] | None = None,
    n: int = 6,
    window: tuple[float, float] | None = None,
    colors: Mapping[str, str] | None = None,
    alpha: float = 0.5,
    ncols: int = 3,
    title: str = "",
) -> Figure:
    """A matplotlib montage of axial slices with coloured overlays (a still for notebooks).

    Args:
        image: Map (D, H, W).
        overlays: Name -> (D, H, W) mask.
        spacing_mm: (sz, sy, sx) voxel spacing in mm (axes in mm, physical aspect).
        slices: Slice indices to show; default :func:`montage_slices` with ``n``.
        n: Number of slices when ``slices`` is None.
        window: (low, high) display window; default :func:`default_window`.
        colors: Overlay name -> colour; :data:`PALETTE` fills the rest.
        alpha: Overlay opacity in (0, 1].
        ncols: Panels per row.
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot, so it shows once).
    """
    maps, masks, (_, sy, sx) = check_volumes({"image": image}, overlays, spacing_mm)
    depth, height, width = maps["image"].shape
    slices = montage_slices(masks, depth, n) if slices is None else [int(k) for k in slices]
    if not slices or not all(0 <= k < depth for k in slices):
        raise ValueError(f"slices={slices!r} must be a non-empty list in [0, {depth})")
    gray, _ = window_to_uint8(maps["image"], window)
    rgb = _rgb_triplets(list(masks), colors)
    nrows = math.ceil(len(slices) / ncols)
    cols = min(ncols, len(slices))
    fig = BookFigure(
        figsize=(3.0 * cols, 3.0 * nrows * height * sy / (width * sx) + 0.6), layout="constrained"
    )
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    extent = (-0.5 * sx, (width - 0.5) * sx, (height - 0.5) * sy, -0.5 * sy)  # row 0 at the top
    for ax, k in zip(axes, slices, strict=False):
        shown = [(m[k], rgb[name]) for name, m in masks.items()]
        ax.imshow(compose_rgb(gray[k], shown, alpha), extent=extent, interpolation="nearest")
        ax.set_title(f"slice {k}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if masks:
        handles = [Patch(color=rgb[name], label=name) for name in masks]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as an HTML fragment for the static book: no plotly.js, no CDN, no autoplay.

    Args:
        fig: The figure.
        div_id: Fixed id of the figure's div (letters, digits, "-" and "_", starting with a
            letter), so rebuilding the book gives the same bytes.

    Returns:
        A ``<div>`` and a ``<script>`` that calls ``Plotly.newPlot`` (and ``Plotly.addFrames``);
        the page must load plotly.js itself (see :func:`plotly_js_path`).
    """
    if not _DIV_ID.match(div_id):
        raise ValueError(f"div_id={div_id!r} is not a valid HTML id (letter, then letters/digits/-/_)")
    config = {
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


def show(fig: go.Figure, div_id: str, plotly_mime: bool = True) -> None:
    """Displays a figure in a notebook so that myst-nb puts it into the static book.

    The output carries ``text/html`` (:func:`figure_html`), which myst-nb renders in the book;
    with ``plotly_mime`` it also carries Plotly's JSON mime type, which JupyterLab and VS Code
    render live (myst-nb ignores that type when ``text/html`` is present). The JSON doubles the
    size of the executed notebook, not of the book page.

    Args:
        fig: The figure.
        div_id: Fixed div id, see :func:`figure_html`.
        plotly_mime: Also send ``application/vnd.plotly.v1+json`` for live notebooks.
    """
    from IPython.display import display

    bundle = {"text/html": figure_html(fig, div_id)}
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
