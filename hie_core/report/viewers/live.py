"""A live slice viewer for a running kernel (JupyterLab, VS Code): ipywidgets controls.

A static book has no kernel, so it shows only the widget's last still; the book's interactive
viewers are the Plotly ones of :mod:`hie_core.report.viewers.slices`.

Display convention (radiological): row 0 at the top, column 0 at the left; pixels are drawn
with their in-plane spacing, so the aspect ratio is physical. The view is cropped to the brain
(:func:`hie_core.report.viewers.volumes.brain_box`). Given a reference, the overlays are predictions
shown one at a time in the book's agreement coding (true positive, miss, false positive).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.colors import to_rgb

from hie_core.report.viewers.slice_frames import depth_labels
from hie_core.report.viewers.volumes import (
    AGREEMENT_COLOURS,
    AGREEMENT_LABELS,
    REFERENCE_COLOUR,
    REFERENCE_LABEL,
    agreement_codes,
    agreement_masks,
    brain_box,
    busiest_slice,
    check_volumes,
    compose_rgb,
    default_window,
    rgb_triplets,
    window_to_uint8,
)

__all__ = ["LiveViewer", "live_viewer"]


class LiveViewer(widgets.VBox):
    """ipywidgets slice viewer: slice slider, map dropdown, window slider, overlay controls.

    Without a reference each overlay has a checkbox (``overlay_checkboxes``); with one, the
    overlays are predictions and ``overlay_dropdown`` picks the one shown against the reference
    (or the reference alone, or none), coloured as :data:`hie_core.report.viewers.volumes.AGREEMENT_COLOURS`.

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
        reference: np.ndarray | None = None,
    ) -> None:
        maps, masks, self._spacing = check_volumes(images, overlays, spacing_mm)
        ref = None if reference is None else check_volumes(maps, {"reference": reference}, spacing_mm)[1]
        self.box = brain_box([next(iter(maps.values()))], [] if ref is None else [ref["reference"]])
        r0, r1, c0, c1 = self.box
        self._maps = {k: v[:, r0:r1, c0:c1] for k, v in maps.items()}
        self._masks = {k: v[:, r0:r1, c0:c1] for k, v in masks.items()}
        self._alpha = alpha
        self._colors = rgb_triplets(list(self._masks), colors)
        self._windows = {k: default_window(v) for k, v in maps.items()}
        depth, height, width = next(iter(self._maps.values())).shape
        self._reference = None if ref is None else ref["reference"][:, r0:r1, c0:c1]
        busiest = self._masks if self._reference is None else {"reference": self._reference}
        start = busiest_slice(busiest, depth) if initial_slice is None else initial_slice
        if not 0 <= start < depth:
            raise ValueError(f"initial_slice={initial_slice} outside [0, {depth})")
        depths = depth_labels(range(depth), self._spacing[0])  # the slider reads mm; its value is the index
        self.slice_slider = widgets.SelectionSlider(options=list(zip(depths, range(depth), strict=True)), value=start,
                                                    description="depth")  # fmt: skip
        self.image_dropdown = widgets.Dropdown(options=list(self._maps), description="map")
        self.window_slider = widgets.FloatRangeSlider(description="window", readout_format=".4g")
        self._set_window_range(self.image_dropdown.value)
        self.overlay_checkboxes = {}
        self.overlay_dropdown = None
        if self._reference is None:
            self.overlay_checkboxes = {
                n: widgets.Checkbox(value=True, description=n, indent=False) for n in self._masks
            }
            overlay_controls = list(self.overlay_checkboxes.values())
        else:
            options = [*self._masks, REFERENCE_LABEL, "no overlay"]
            self.overlay_dropdown = widgets.Dropdown(options=options, description="overlay")
            key = " ".join(
                f'<span style="color:{c}">&#9632;</span> {AGREEMENT_LABELS[k]}'
                for k, c in AGREEMENT_COLOURS.items()
            )
            overlay_controls = [self.overlay_dropdown, widgets.HTML(key)]
        aspect = (height * self._spacing[1]) / (width * self._spacing[2])
        self.image = widgets.Image(format="png", width=str(width_px), height=str(round(width_px * aspect)))
        self.displayed_slice = -1
        self.displayed_rgb = np.zeros((height, width, 3), dtype=np.float32)
        self.image_dropdown.observe(self._on_map_change, names="value")
        toggles = [
            *self.overlay_checkboxes.values(),
            *([self.overlay_dropdown] if self.overlay_dropdown else []),
        ]
        for control in [self.slice_slider, self.window_slider, *toggles]:
            control.observe(self.update, names="value")
        controls = [widgets.HBox([self.image_dropdown, self.slice_slider]), self.window_slider]
        super().__init__(children=[*controls, widgets.HBox(overlay_controls), self.image])
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

    def _shown(self, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mask, RGB) layers of slice ``k`` under the current overlay controls."""
        if self._reference is None:
            return [
                (m[k], self._colors[n]) for n, m in self._masks.items() if self.overlay_checkboxes[n].value
            ]
        choice = self.overlay_dropdown.value
        if choice in self._masks:
            return agreement_masks(agreement_codes(self._masks[choice][k], self._reference[k]))
        if choice == REFERENCE_LABEL:
            return [(self._reference[k], np.array(to_rgb(REFERENCE_COLOUR)))]
        return []

    def update(self, change: dict | None = None) -> None:
        """Redraws the current slice with the current map, window and overlays."""
        k = self.slice_slider.value
        low, high = self.window_slider.value
        gray, _ = window_to_uint8(self._maps[self.image_dropdown.value][k], (low, max(high, low + 1e-6)))
        self.displayed_rgb = compose_rgb(gray, self._shown(k), self._alpha)
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
    reference: np.ndarray | None = None,
) -> LiveViewer:
    """A live slice viewer widget for JupyterLab / VS Code (see :class:`LiveViewer`).

    Args:
        images: Name -> (D, H, W) map, chosen in a dropdown.
        overlays: Name -> (D, H, W) mask: each with a checkbox, or, given a reference, the
            predictions chosen one at a time in a dropdown.
        spacing_mm: (sz, sy, sx) voxel spacing in mm (sets the aspect ratio).
        colors: Overlay name -> colour; :data:`PALETTE` fills the rest.
        initial_slice: First slice; default the slice with the most reference (else overlay) voxels.
        reference: Reference lesion mask (D, H, W); the overlays are then shown against it.

    Returns:
        The widget; in a static book only its last still shows.
    """
    return LiveViewer(images, overlays, spacing_mm, colors, initial_slice=initial_slice, reference=reference)
