"""The Methods page's static before/after figures (hie_core.report.pages.methods_figures)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from hie_core.io import ImageGeometry
from hie_core.report.pages import methods_page
from hie_core.report.viewers.display import BookFigure


def _pre(image: np.ndarray, label: np.ndarray | None, spacing: tuple[float, float, float]) -> SimpleNamespace:
    """A stand-in for PreprocessedCase: image (2, D, H, W), label (1, D, H, W) or None, geometry."""
    geometry = ImageGeometry(image.shape[1:], spacing)
    return SimpleNamespace(case_id="case-7", image=image, label=label, geometry=geometry)


def _brain(shape: tuple[int, int, int], value: float) -> np.ndarray:
    volume = np.zeros(shape, np.float32)
    volume[:, 2:-2, 2:-2] = value + np.arange(shape[2] - 4, dtype=np.float32)  # a brain with a gradient
    return volume


def _png_width(fig: BookFigure) -> int:
    return Image.open(io.BytesIO(fig._repr_png_())).size[0]


def test_preprocessing_figure_matches_depths_in_mm() -> None:
    native = _brain((6, 20, 24), 1000.0)
    resampled = _brain((4, 10, 12), 0.0)
    label = np.zeros((1, 4, 10, 12), np.uint8)
    label[0, 1:4, 4:6, 4:6] = 1  # lesion on resampled slices 1-3 (centres 4.5, 7.5, 10.5 mm at 3 mm)
    native_label = np.zeros((6, 20, 24), np.uint8)
    native_label[2:6, 8:12, 8:12] = 1
    arrays = {"case_id": "case-7", "adc": native, "label": native_label,
              "geometry": ImageGeometry((6, 20, 24), (2.0, 1.0, 1.0))}  # fmt: skip
    pre = _pre(np.stack([resampled, resampled]), label, (3.0, 2.0, 2.0))
    fig = methods_page.preprocessing_figure(arrays, pre, "synthetic")
    titles = [ax.get_title() for ax in fig.axes]
    # native slice nearest in z to each depth: floor(d / 2 mm) -> slices 2, 3, 5 (centres 5, 7, 11 mm)
    assert titles == ["native, 5.0 mm", "native, 7.0 mm", "native, 11.0 mm",
                      "preprocessed, 4.5 mm", "preprocessed, 7.5 mm", "preprocessed, 10.5 mm"]  # fmt: skip
    assert "case-7 (synthetic) at 3 depths (4.5, 7.5, 10.5 mm)" in fig.alt and "6×20×24" in fig.alt
    assert "4×10×12" in fig.alt and "outlined" in fig.alt
    data = fig.csv_data.set_index(["grid", "slice"])
    assert (
        data.loc[("preprocessed", 3), "lesion voxels"] == 4 and data.loc[("native", 5), "lesion voxels"] == 16
    )
    assert data.loc[("native", 2), "depth mm"] == 5.0
    assert _png_width(fig) <= 720 and all(ax.title.get_fontsize() >= 9 for ax in fig.axes)
    assert 'alt="Axial ADC slices of case case-7' in fig._repr_html_() and ".csv" in fig._repr_html_()


@pytest.mark.parametrize("with_label", [True, False])
def test_augmentation_figure_one_row_per_transform(with_label: bool) -> None:
    before = _brain((8, 16, 16), 0.0)
    label = np.zeros((1, 8, 16, 16), np.uint8)
    label[0, 5, 6:9, 6:9] = 1  # busiest slice 5: depth (5 + 0.5) * 2 mm = 11 mm
    pre = _pre(np.stack([before, before * 2]), label if with_label else None, (2.0, 1.0, 1.0))
    examples = {"gamma": pre.image * 1.01, "noise": pre.image + 5}
    fig = methods_page.augmentation_figure(pre, examples, "synthetic")
    depth = "11.0" if with_label else "9.0"  # no label: the middle slice, 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == [f"original, {depth} mm", f"gamma, {depth} mm"] and len(titles) == 6
    assert (
        titles[3:5] == [f"original, {depth} mm", f"noise, {depth} mm"]
        and titles[5] == "noise − original (±5)"
    )
    assert "2 rows, one per transform (gamma, noise), of case case-7's preprocessed ADC" in fig.alt
    assert f"at depth {depth} mm" in fig.alt
    rows = fig.csv_data.set_index("transform")
    assert rows.loc["noise", "difference window ±"] == pytest.approx(5.0)
    assert rows.loc["gamma", "mean augmented in brain"] == pytest.approx(
        1.01 * rows.loc["gamma", "mean original in brain"]
    )
    assert _png_width(fig) <= 720
    same = methods_page.augmentation_figure(pre, {"blur": pre.image.copy()}, "synthetic")
    assert same.axes[2].get_title() == "blur − original (no change on this slice)"
    with pytest.raises(ValueError, match="examples is empty"):
        methods_page.augmentation_figure(pre, {}, "synthetic")
