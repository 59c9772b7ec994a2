"""Tests of the viewers and charts: report.slices (Plotly), live (ipywidgets), stills (matplotlib), charts, display."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import shutil
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from hie_core.lesions import label_lesions
from hie_core.report.viewers import charts, display, live, slices, stills, volumes
from hie_core.report.viewers.csv_links import csv_link, plotly_frame

SPACING_MM = (3.0, 0.8, 0.6)


def _decode(z: object) -> np.ndarray:
    """A trace's z as a NumPy array, whether a plotly typed-array spec or a plain array."""
    if isinstance(z, dict):
        shape = tuple(int(s) for s in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)
    return np.asarray(z)


@pytest.fixture
def case() -> dict[str, np.ndarray]:
    """A (6, 20, 24) case: a brain box on a zero background, lesion mostly in slice 4."""
    rng = np.random.default_rng(0)
    adc = np.zeros((6, 20, 24), dtype=np.float32)
    adc[:, 3:17, 4:20] = 1000.0 + 100.0 * rng.standard_normal((6, 14, 16))
    zadc = np.where(adc > 0, rng.standard_normal(adc.shape), 0.0).astype(np.float32)
    label = np.zeros(adc.shape, dtype=bool)
    label[4, 8:12, 9:14] = True  # 20 voxels
    label[2, 10, 10] = True
    pred = np.zeros(adc.shape, dtype=bool)
    pred[4, 9:12, 10:13] = True
    pred[1, 5:7, 5:7] = True
    return {"adc": adc, "zadc": zadc, "label": label, "pred": pred}


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in to_rgb(colour))


def _lightness(colour: str) -> float:
    """CIE L* of an sRGB colour."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    y = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 116 * y ** (1 / 3) - 16 if y > 0.008856 else 903.3 * y


def _scale_colour(scale, position: float) -> tuple[int, int, int] | None:
    """The colour a stepped plotly colour scale gives at ``position``; None where transparent."""
    below = [c for p, c in scale if p <= position + 1e-9]
    r, g, b, *a = (float(v) for v in re.findall(r"[\d.]+", below[-1]))
    return None if a and a[0] == 0 else (round(r), round(g), round(b))


def _viewer(case: dict[str, np.ndarray]):
    return slices.case_viewer(
        case["adc"], case["zadc"], case["label"], SPACING_MM, {"Dice": case["pred"]}, title="t"
    )


def test_frames_slider_and_initial_slice(case: dict[str, np.ndarray]) -> None:
    fig = _viewer(case)
    assert len(fig.frames) == 6
    assert [f.name for f in fig.frames] == [str(k) for k in range(6)]
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == 6 and slider.active == 4  # slice 4 has the most overlay voxels
    assert [s.label for s in slider.steps][:2] == [f"{0.5 * SPACING_MM[0]:.1f} mm", f"{1.5 * SPACING_MM[0]:.1f} mm"]
    step = slider.steps[2]
    assert step.method == "animate" and list(step.args[0]) == ["2"]
    assert step.args[1]["frame"] == {"duration": 0, "redraw": True}
    assert not any(b.method == "animate" for m in fig.layout.updatemenus for b in m.buttons)  # no play


def test_traces_are_uint8_with_transparent_overlays(case: dict[str, np.ndarray]) -> None:
    fig = _viewer(case)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    ref = volumes.REFERENCE_LABEL
    assert [t.name for t in heatmaps] == ["ADC", "Dice", ref, "ZADC", "Dice", ref]  # ADC | ZADC
    assert [t.visible for t in heatmaps] == [True, True, False, True, True, False]  # one overlay shown
    assert [t.xaxis for t in heatmaps] == ["x", "x", "x", "x2", "x2", "x2"]
    for trace in heatmaps:
        assert trace.z.dtype == np.uint8
    for overlay in heatmaps[1:3] + heatmaps[4:]:
        first, last = overlay.colorscale[0][1], overlay.colorscale[-1][1]
        assert re.fullmatch(r"rgba\(\d+,\d+,\d+,0\)", first.replace(" ", ""))
        assert last.startswith("rgba(") and not last.endswith(",0)")
        assert overlay.legendgroup == overlay.name and overlay.showlegend is False
    legend = [t for t in fig.data if t.type == "scatter"]
    rings = list(slices.LESION_RING_CODES.values())
    assert [t.name for t in legend] == [*volumes.AGREEMENT_LABELS.values(), *rings, ref + ", shown alone"]
    colours = volumes.AGREEMENT_COLOURS
    assert [t.marker.color for t in legend] == [
        *colours.values(),
        colours[2],
        colours[3],
        volumes.REFERENCE_COLOUR,
    ]
    assert [t.marker.symbol for t in legend][3:5] == ["square-open", "square-open"]  # rings, not fills
    assert fig.layout.legend.itemclick is False  # a key, not toggles: the menu picks the overlay


def test_frame_data_match_volumes(case: dict[str, np.ndarray]) -> None:
    fig = _viewer(case)
    frame = fig.frames[4]
    assert list(frame.traces) == [0, 1, 2, 3, 4, 5]
    assert all(set(t.to_plotly_json()) <= {"type", "z", "x0", "y0"} for t in frame.data)  # no visible
    for ref in (frame.data[2], frame.data[5]):  # the reference on both panels
        np.testing.assert_array_equal(ref.z, case["label"][4, 8:12, 9:14].astype(np.uint8))  # cropped patch
        assert ref.x0 == pytest.approx(9 * 0.6) and ref.y0 == pytest.approx(8 * 0.8)
    assert fig.frames[0].data[5].z.shape == (1, 1) and fig.frames[0].data[5].z.max() == 0  # empty slice
    r0, r1, c0, c1 = volumes.brain_box([case["adc"]], [case["label"]])
    assert (r0, r1, c0, c1) == (0, 20, 1, 23)  # the brain box 3:17 x 4:20 plus 3 voxels, clipped
    for k, name, window in ((0, "adc", None), (3, "zadc", (-5.0, 5.0))):  # one crop for both panels
        map8, _ = volumes.window_to_uint8(case[name], window)
        np.testing.assert_array_equal(frame.data[k].z, map8[4, r0:r1, c0:c1])
        assert fig.data[k].x0 == pytest.approx(c0 * 0.6) and fig.data[k].dx == pytest.approx(0.6)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis2.showticklabels is False


def test_agreement_coding_of_a_hand_made_case() -> None:
    """One true positive, one miss and one false positive voxel get their three colours everywhere."""
    adc = np.zeros((3, 12, 12), np.float32)
    adc[:, 2:10, 2:10] = 1000.0
    ref = np.zeros(adc.shape, bool)
    pred = np.zeros(adc.shape, bool)
    ref[1, 4, 4] = pred[1, 4, 4] = True  # true positive
    ref[1, 4, 6] = True  # miss
    pred[1, 6, 6] = True  # false positive
    codes = volumes.agreement_codes(pred, ref)
    assert (
        codes[1, 4, 4] == 1 and codes[1, 4, 6] == 2 and codes[1, 6, 6] == 3 and np.count_nonzero(codes) == 3
    )
    colours = volumes.AGREEMENT_COLOURS
    assert len({c.lower() for c in (*colours.values(), volumes.REFERENCE_COLOUR)}) == 4
    lightness = [_lightness(colours[k]) for k in (1, 2, 3)]
    assert min(abs(a - b) for a, b in itertools.combinations(lightness, 2)) > 8  # tell apart in grey too

    # Plotly: the overlay's codes and its colour scale map each voxel to its colour.
    fig = slices.case_viewer(adc, adc, ref, (1.0, 1.0, 1.0), {"m": pred})
    overlay = next(t for t in fig.data if t.name == "m")
    patch = fig.frames[1].data[
        1
    ]  # the missed one-voxel lesion (4, 6) and the false-positive one (6, 6): ringed
    assert patch.x0 == pytest.approx(4.0) and patch.y0 == pytest.approx(2.0)  # rows from 2, columns from 4
    # rows 2-8, columns 4-8: true positive 1, miss 2, false positive 3; the missed lesion's ring (4) two
    # voxels out, the false-positive lesion's (5) where the other is not; a one-voxel gap inside each ring
    np.testing.assert_array_equal(patch.z, [[4, 4, 4, 4, 4], [4, 0, 0, 0, 4], [1, 5, 2, 5, 4], [4, 0, 0, 0, 4],
                                            [4, 4, 3, 4, 4], [5, 0, 0, 0, 5], [5, 5, 5, 5, 5]])  # fmt: skip
    for code in (1, 2, 3):
        assert _scale_colour(overlay.colorscale, code / overlay.zmax) == _rgb(colours[code])
    for code, colour in ((4, colours[2]), (5, colours[3])):
        assert _scale_colour(overlay.colorscale, code / overlay.zmax) == _rgb(colour)
    menu = next(m for m in fig.layout.updatemenus if m.type == "dropdown")
    assert menu.buttons[0].label == "m: 1 of 2 lesions missed, 1 false-positive"
    assert menu.buttons[1].label == f"{volumes.REFERENCE_LABEL}: 2 lesions"
    assert _scale_colour(overlay.colorscale, 0.0) is None  # code 0 is transparent
    legend = [t.name for t in fig.data if t.type == "scatter"]
    assert legend[:3] == ["true positive (prediction and reference)", "miss (reference only)",
                          "false positive (prediction only)"]  # fmt: skip

    # Matplotlib still: the legend names the three and each voxel has its colour.
    still = stills.agreement_montage(adc, ref, pred, (1.0, 1.0, 1.0), alpha=1.0)
    assert [t.get_text() for t in still.legends[0].get_texts()] == legend[:3]
    rgb = still.axes[0].get_images()[0].get_array()
    r0, _, c0, _ = volumes.brain_box([adc], [ref])
    for (row, col), code in {(4, 4): 1, (4, 6): 2, (6, 6): 3}.items():
        np.testing.assert_allclose(rgb[row - r0, col - c0], np.array(_rgb(colours[code])) / 255, atol=1e-6)

    # Live viewer: the same colours, the method chosen in a dropdown.
    viewer = live.live_viewer({"ADC": adc}, {"m": pred}, (1.0, 1.0, 1.0), reference=ref)
    viewer.window_slider.value = (0.0, 2000.0)  # the slider's range is the map's, 0..1000
    viewer.slice_slider.value = 1
    r0, _, c0, _ = viewer.box
    shown = viewer.displayed_rgb
    expected = 0.5 * 1.0 + 0.5 * np.array(_rgb(colours[2])) / 255  # half white (1000 of 0..1000), half colour
    np.testing.assert_allclose(shown[4 - r0, 6 - c0], expected, atol=1e-2)
    viewer.overlay_dropdown.value = "no overlay"
    assert np.allclose(viewer.displayed_rgb[4 - r0, 6 - c0], 1.0)
    assert viewer.overlay_dropdown.options == ("m", volumes.REFERENCE_LABEL, "no overlay")


def test_one_method_at_a_time_with_a_selector(case: dict[str, np.ndarray]) -> None:
    preds = {"Dice": case["pred"], "Tversky": case["label"], "baseline": ~case["label"]}
    fig = slices.case_viewer(case["adc"], case["zadc"], case["label"], SPACING_MM, preds)
    overlays = [
        (i, t.name, t.visible) for i, t in enumerate(fig.data) if t.type == "heatmap" and i not in (0, 5)
    ]
    per_panel = [("Dice", True), ("Tversky", False), ("baseline", False), (volumes.REFERENCE_LABEL, False)]
    assert [(n, v) for _, n, v in overlays] == per_panel * 2  # ADC and ZADC panels
    selector = next(m for m in fig.layout.updatemenus if m.type == "dropdown")
    names = ["Dice", "Tversky", "baseline", volumes.REFERENCE_LABEL, "no overlay"]
    assert [
        b.label.split(":")[0] for b in selector.buttons
    ] == names  # each method's entry counts its lesions
    n_lesions = label_lesions(case["label"])[1]
    assert (
        selector.buttons[1].label == f"Tversky: 0 of {n_lesions} lesions missed, 0 false-positive"
    )  # the label
    for name, button in zip(names, selector.buttons, strict=True):
        visible, indices = button.args
        assert button.method == "restyle" and list(indices) == [i for i, _, _ in overlays]
        assert visible["visible"] == [n == name for _, n, _ in overlays]
    assert all("visible" not in t.to_plotly_json() for f in fig.frames for t in f.data)  # slider keeps it


def test_map_buttons_restyle_only_maps(case: dict[str, np.ndarray]) -> None:
    images = {"ADC": case["adc"], "ZADC": case["zadc"]}
    menu = slices.slice_viewer(images, {"gt": case["label"]}, SPACING_MM).layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["ADC", "ZADC"]
    assert menu.buttons[1].method == "restyle"
    args = menu.buttons[1].args
    assert args[0] == {"visible": [False, True]} and list(args[1]) == [0, 1]
    assert not [m for m in _viewer(case).layout.updatemenus if m.type == "buttons"]  # both maps in view


def test_window_and_busiest_slice() -> None:
    volume = np.zeros((2, 10, 10), dtype=np.float32)
    volume[:, 2:8, 2:8] = np.arange(72, dtype=np.float32).reshape(2, 6, 6) + 1
    low, high = volumes.default_window(volume)
    assert (low, high) == pytest.approx(tuple(np.percentile(np.arange(1, 73), [1, 99])))
    as8, _ = volumes.window_to_uint8(volume, (10.0, 20.0))
    assert as8.dtype == np.uint8 and as8[0, 0, 0] == 0 and as8.max() == 255
    assert volume[0, 4, 3] == 14 and as8[0, 4, 3] == round((14 - 10) * 25.5)
    assert volumes.content_box([volume], margin=1) == (1, 9, 1, 9)
    masks = {"a": np.zeros((3, 4, 4), bool), "b": np.zeros((3, 4, 4), bool)}
    assert volumes.busiest_slice(masks, 3) == 1
    masks["a"][2, :2, :2] = True
    masks["b"][0, 0, :3] = True
    assert volumes.busiest_slice(masks, 3) == 2


def test_validation_errors(case: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="spacing_mm"):
        slices.slice_viewer({"ADC": case["adc"]}, {}, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="'bad'"):
        slices.slice_viewer({"ADC": case["adc"]}, {"bad": np.zeros((6, 20, 23), bool)}, SPACING_MM)
    with pytest.raises(ValueError, match="initial_slice"):
        slices.slice_viewer({"ADC": case["adc"]}, {}, SPACING_MM, initial_slice=6)
    with pytest.raises(ValueError, match="div_id"):
        display.figure_html(_viewer(case), "1 bad id")


def test_figure_html_offline_deterministic_no_autoplay(case: dict[str, np.ndarray]) -> None:
    fig = _viewer(case)
    html = display.figure_html(fig, "case-viewer-1")
    assert html == display.figure_html(fig, "case-viewer-1")
    assert 'id="case-viewer-1"' in html and "Plotly.addFrames" in html
    assert "Plotly.animate" not in html
    assert not re.search(r"<script[^>]*src=", html)
    assert "http://" not in html and "https://" not in html


def test_show_emits_html_and_plotly_mime(case: dict[str, np.ndarray], monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    fig = _viewer(case)
    display.show(fig, "v1", plotly_mime=True)
    bundle, raw = shown[0]
    # the figure, then the link that downloads the data it shows first (issue 27: a CSV link under every figure)
    figure, link = bundle["text/html"].split("\n<p ", 1)
    assert raw and figure == display.figure_html(fig, "v1")
    frame = plotly_frame(fig)
    assert "<p " + link == csv_link(frame, "v1", "figure data")
    assert 'download="v1.csv"' in link and f"Download the figure data as CSV ({len(frame):,} rows)" in link
    href = re.search(r'href="data:text/csv;charset=utf-8,([^"]*)"', link).group(1)
    assert pd.read_csv(io.StringIO(unquote(href))).shape == frame.shape and len(frame) > 0
    assert len(bundle["application/vnd.plotly.v1+json"]["frames"]) == 6
    json.dumps(bundle)  # a JSON-able mime bundle
    given = pd.DataFrame({"slice_mm": [0.0, 4.0], "dice": [0.5, 0.25]})
    display.show(fig, "v2", data=given)  # the data a caller names is what the link downloads
    html_only = shown[1][0]
    assert "application/vnd.plotly.v1+json" not in html_only
    assert html_only["text/html"].endswith(csv_link(given, "v2", "figure data"))


def test_plotly_js_path() -> None:
    path = display.plotly_js_path()
    assert path.name == "plotly.min.js" and path.stat().st_size > 1_000_000


def test_page_size_for_a_256x256x32_case() -> None:
    """2 maps filling the whole 256x256x32 field (no crop) + 7 lesion-sized overlays: under 10 MB."""
    rng = np.random.default_rng(1)
    adc = (1350 + 430 * rng.standard_normal((32, 256, 256))).astype(np.float32)
    zadc = rng.standard_normal((32, 256, 256)).astype(np.float32)
    zz, yy, xx = np.mgrid[:32, :256, :256]
    lesion = ((zz - 14) / 5) ** 2 + ((yy - 100) / 20) ** 2 + ((xx - 90) / 16) ** 2 < 1
    preds = {f"loss {i}": np.roll(lesion, (0, 2 * i, 3 * i), (0, 1, 2)) for i in range(6)}
    html = display.figure_html(slices.case_viewer(adc, zadc, lesion, (3.0, 0.7, 0.7), preds), "big")
    print(f"case viewer 256x256x32, 2 maps + 7 overlays: {len(html) / 1e6:.2f} MB")
    assert 2 * (256 * 256 * 32) * 4 / 3 < len(html) < 10e6  # both maps are in it, base64 uint8


def test_training_curves_figure() -> None:
    epochs = np.arange(1, 6)

    def history(dice: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "selection_loss": 1.2 / epochs,
                             "selection_dice": dice})  # fmt: skip

    hist = {"Dice": [history([0.1, 0.3, 0.5, 0.4, 0.45]), history([0.2, 0.2, 0.3, 0.3, 0.35])],
            "Tversky": [history([0.2, 0.2, 0.3, 0.6, 0.5])]}  # fmt: skip
    fig = charts.training_curves_figure(hist)
    assert len(fig.data) == 12  # 3 curves and a best-epoch marker per loss and seed
    assert [t.name for t in fig.data if t.showlegend] == ["Dice, seed 0", "Dice, seed 1", "Tversky, seed 0"]
    assert [t.line.dash for t in fig.data if t.showlegend] == ["solid", "dash", "solid"]  # seeds told apart
    best = [t for t in fig.data if t.mode == "markers"]
    assert [(t.x[0], t.y[0]) for t in best] == [(3, 0.5), (5, 0.35), (4, 0.6)]
    assert fig.layout.width is None  # fills the text column
    with pytest.raises(ValueError, match="selection_dice"):
        charts.training_curves_figure({"x": [hist["Tversky"][0].drop(columns="selection_dice")]})


def test_table1_figure_points_intervals_and_reference_lines() -> None:
    t1 = pd.DataFrame({"method": ["dice", "hdt", "baseline", "ceiling"]})
    for metric, values in {
        "dice": [0.5, 0.2, 0.4, 0.8],
        "masd_mm": [3.0, 9.0, 4.0, 0.5],
        "nsd": [0.6, 0.3, 0.5, 0.9],
    }.items():
        t1[f"{metric}_mean"] = values
        t1[f"{metric}_ci_low"] = np.array(values) - 0.1
        t1[f"{metric}_ci_high"] = np.array(values) + 0.2
    fig = charts.table1_figure(t1)
    points = [t for t in fig.data if t.mode == "markers"]
    assert len(points) == 3 and list(points[0].y) == ["dice", "hdt"]
    np.testing.assert_allclose(points[1].error_x.array, [0.2, 0.2])
    np.testing.assert_allclose(points[1].error_x.arrayminus, [0.1, 0.1])
    lines = [(t.name, t.x[0]) for t in fig.data if t.mode == "lines"]
    assert lines == [
        ("baseline", 0.4),
        ("ceiling", 0.8),
        ("baseline", 4.0),
        ("ceiling", 0.5),
        ("baseline", 0.5),
        ("ceiling", 0.9),
    ]
    assert [t.name for t in fig.data if t.showlegend] == ["mean [95% CI]", "baseline", "ceiling"]
    assert fig.layout.width is None


def test_figure_html_refuses_a_fixed_width_wider_than_the_text_column(case: dict[str, np.ndarray]) -> None:
    fig = _viewer(case)
    fig.update_layout(width=display.MAX_FIGURE_WIDTH_PX + 1)
    with pytest.raises(ValueError, match="width"):
        display.figure_html(fig, "wide")


def test_table_has_no_index_column_escapes_text_and_scrolls_when_asked() -> None:
    frame = pd.DataFrame({"method": ["dice", "<b>x</b>"], "Dice": [0.51234, np.nan]}, index=[7, 8])
    whole = display.table(frame, precision=2, note="n = 2 <cases>", scroll=True)._repr_html_()
    html, link = whole.split('<p class="hie-csv">')
    assert "0.51234" in link and 'download="data-' in link  # the CSV keeps full precision
    assert "0.51" in html and "0.512" not in html and ">-<" in html
    assert ">7<" not in html and "row_heading" not in html  # no index column
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # text is escaped
    assert (
        "overflow" not in html and "max-height" not in html and "n = 2 &lt;cases&gt;" in html
    )  # never clipped
    assert "hie-table-compact" in html and "white-space: normal" in html
    ci = pd.DataFrame({"Dice": [display.format_ci(0.5, 0.4, 0.6, html_break=True)]})
    shown = display.table(ci, html_columns=["Dice"])._repr_html_()
    assert '<span class="hie-num">0.500</span> <span class="hie-ci">[0.400, 0.600]</span>' in shown
    assert "td.col0, th.col_heading.col0" not in shown and "td.col0 {\n  text-align: right" in shown  # numbers right
    assert 'class="hie-csv"' in shown and 'download="data-' in shown  # the CSV link under it
    assert display.format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert display.format_ci(0.5, float("nan"), float("nan"), 2) == "0.50"
    assert display.format_ci(float("nan"), 0.1, 0.2) == "n/a"
    assert [display.format_p(p) for p in (0.0004, 0.0312, float("nan"))] == ["<0.001", "0.031", "-"]


def test_live_viewer_updates(case: dict[str, np.ndarray]) -> None:
    viewer = live.live_viewer({"ADC": case["adc"], "ZADC": case["zadc"]}, {"gt": case["label"]}, SPACING_MM)
    first = bytes(viewer.image.value)
    assert viewer.displayed_slice == 4 and first.startswith(b"\x89PNG")
    viewer.slice_slider.value = 1  # observers call update()
    assert viewer.displayed_slice == 1 and bytes(viewer.image.value) != first
    viewer.slice_slider.value = 4
    assert bytes(viewer.image.value) == first
    red = volumes.rgb_triplets(["gt"], None)["gt"]
    np.testing.assert_allclose(viewer.displayed_rgb[10, 10], _blend(viewer, 4, 10, 10, red), atol=1e-6)
    viewer.overlay_checkboxes["gt"].value = False
    gray = viewer.displayed_rgb[10, 10]
    assert np.allclose(gray, gray[0])  # no colour left
    viewer.image_dropdown.value = "ZADC"
    assert viewer.window_slider.value == pytest.approx(volumes.default_window(case["zadc"]))
    viewer.window_slider.value = (-0.5, 0.5)
    viewer.image_dropdown.value = "ADC"
    assert viewer.window_slider.value == pytest.approx(volumes.default_window(case["adc"]))
    viewer.image_dropdown.value = "ZADC"
    assert viewer.window_slider.value == pytest.approx((-0.5, 0.5))  # each map keeps its window


def _blend(viewer: live.LiveViewer, k: int, row: int, col: int, color: np.ndarray) -> np.ndarray:
    """Closed form of one overlaid pixel: half grey, half overlay colour."""
    low, high = viewer.window_slider.value
    value = viewer._maps[viewer.image_dropdown.value][k, row, col]
    gray = np.clip(np.rint((value - low) * 255 / (high - low)), 0, 255) / 255
    return 0.5 * gray + 0.5 * color


def test_overlay_montage(case: dict[str, np.ndarray]) -> None:
    fig = stills.overlay_montage(case["adc"], {"gt": case["label"], "Dice": case["pred"]}, SPACING_MM, n=6)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    sz = SPACING_MM[0]  # the slices holding overlay voxels (1, 2, 4), titled by their depth in mm
    assert titles == [f"depth {(k + 0.5) * sz:.1f} mm" for k in (1, 2, 4)]
    assert fig.alt.startswith(f"3 axial slices (depth {1.5 * sz:.1f} to {4.5 * sz:.1f} mm)") and "/" not in fig.alt
    image = fig.axes[0].get_images()[0]
    assert image.get_extent() == pytest.approx((0.3, 13.5, 15.6, -0.4))  # cropped, row 0 at the top, mm
    assert volumes.brain_box([case["adc"]], [case["label"], case["pred"]]) == (0, 20, 1, 23)
    assert volumes.montage_slices({}, 10, 3) == [0, 4, 9]


_VISIBLE = """
const gd = document.getElementById(arguments[0]);
if (!gd || !gd.data || !gd.layout.sliders) return null;
return {active: gd.layout.sliders[0].active,
        shown: gd.data.filter(t => t.type === 'heatmap' && t.visible === true).map(t => t.name)};
"""


def test_method_menu_and_slider_in_chromium(case: dict[str, np.ndarray], tmp_path) -> None:
    """In a real browser: the menu shows one method, and a slider move keeps the others hidden."""
    browser, driver_path = (
        shutil.which("chromium") or shutil.which("chromium-browser"),
        shutil.which("chromedriver"),
    )
    if not (browser and driver_path):
        pytest.skip("chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    preds = {"Dice": case["pred"], "Tversky": case["label"], "baseline": case["pred"] | case["label"]}
    fig = slices.case_viewer(case["adc"], case["zadc"], case["label"], SPACING_MM, preds, title="t")
    page = tmp_path / "viewer.html"
    page.write_text(f'<html><head><script src="{display.plotly_js_path().as_uri()}"></script></head>'
                    f'<body style="width:900px">{display.figure_html(fig, "viewer")}</body></html>')  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(_VISIBLE, "viewer") is not None)
        first = driver.execute_script(_VISIBLE, "viewer")
        assert first["shown"] == ["ADC", "Dice", "ZADC", "Dice"] and first["active"] == 4
        figure = driver.find_element(By.ID, "viewer")
        figure.find_element(By.CSS_SELECTOR, ".updatemenu-header").click()
        options_shown = figure.find_elements(By.CSS_SELECTOR, ".updatemenu-dropdown-button")
        next(b for b in options_shown if b.text.startswith("Tversky:")).click()
        WebDriverWait(driver, 10).until(lambda d: "Tversky" in d.execute_script(_VISIBLE, "viewer")["shown"])
        rail = figure.find_element(By.CSS_SELECTOR, ".slider-rail-rect")
        ActionChains(driver).move_to_element_with_offset(
            rail, -rail.size["width"] // 2 + 5, 0
        ).click().perform()
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(_VISIBLE, "viewer")["active"] != 4)
        after = driver.execute_script(_VISIBLE, "viewer")
        assert after["shown"] == ["ADC", "Tversky", "ZADC", "Tversky"], after  # hidden masks stay hidden
    finally:
        driver.quit()
