"""Tables and figures of the book's Data and Methods chapters (``notebooks/data.ipynb``,
``notebooks/methods.ipynb``): one function per table or figure, computed from the data,
the configuration and the code, never typed by hand.

Every page says where its numbers come from: :func:`data_source` tells whether the data are
the synthetic BONBID-like set, :func:`source_note` prints that at the top of a page, and the
figure titles and table captions (:func:`captioned`) repeat it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.patches import FancyBboxPatch

from hie_core.data import Case, ValidationReport
from hie_core.io import ImageGeometry, read_image
from hie_core.metrics import BURDEN_STRATA, burden_stratum, case_metrics
from hie_core.report.viewers import (
    PALETTE,
    BookFigure,
    busiest_slice,
    compose_rgb,
    content_box,
    window_to_uint8,
)

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from hie_core.augment import AugmentConfig
    from hie_core.preprocess import PreprocessedCase

__all__ = [
    "SEED_SHAPE", "SYNTHETIC_LABEL", "BookFigure", "data_source", "study_run_config", "study_grids",
    "source_note", "captioned", "case_table", "dataset_summary", "burden_figure", "sample_case", "load_case",
    "sample_case_viewer", "sample_case_still", "pipeline_figure", "preprocessing_table", "preprocessing_figure",
    "augmentation_table", "augmentation_examples", "augmentation_figure", "unet_table", "unet_summary",
    "unet_diagram", "metric_rules_table", "protocol_table",
]  # fmt: skip

#: The seed's grid (x, y, z) = (192, 192, 32) as an array shape (D, H, W).
SEED_SHAPE: tuple[int, int, int] = (32, 192, 192)
SYNTHETIC_LABEL = "SYNTHETIC BONBID-like data (hie_core.synthetic; no patients)"


def study_run_config(study_dir: str | Path) -> dict:
    """The ``config.json`` of the first run (by name) of a study folder ``runs/<study>``."""
    found = sorted(Path(study_dir).glob("*/config.json"))
    if not found:
        raise FileNotFoundError(f"{study_dir}: no <loss>/config.json - is this a study folder?")
    return json.loads(found[0].read_text())


def data_source(study_dir: str = "", data_dir: str = "") -> tuple[Path, bool, str]:
    """Where a chapter's data come from.

    Args:
        study_dir: a study folder; its runs' ``config.json`` names the data (wins if given).
        data_dir: a BONBID-HIE folder; ``""`` = the small synthetic set (generated and cached
            under ``$HIE_CACHE_DIR`` on first use).

    Returns:
        ``(folder, synthetic, label)``; ``label`` names the source for titles and captions.
    """
    from hie_core.synthetic import MANIFEST

    if study_dir:
        info = study_run_config(study_dir)
        path = Path(info["data_dir_resolved"])
        synthetic = bool(info.get("synthetic"))
    else:
        from hie_core.training.config import make_config
        from hie_core.training.experiment import resolve_data_dir

        path = resolve_data_dir(make_config(preset="quick", device="cpu", data_dir=data_dir))
        synthetic = not data_dir
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: data folder not found (named by {study_dir or 'data_dir'})")
    synthetic = synthetic or (path / MANIFEST).is_file()  # e.g. a synthetic folder given as data_dir
    return path, synthetic, SYNTHETIC_LABEL if synthetic else f"BONBID-HIE data ({path})"


def study_grids(study_dir: str = "") -> dict[str, tuple[int, int, int]]:
    """The seed's preprocessing grid, plus the study's own grid (D, H, W) where it differs."""
    grids = {"seed protocol": SEED_SHAPE}
    if study_dir:
        shape = tuple(int(s) for s in study_run_config(study_dir)["config"]["target_shape"])
        if shape != SEED_SHAPE:
            grids["this study"] = shape  # type: ignore[assignment]
    return grids


def source_note(synthetic: bool, label: str) -> None:
    """Display a page-top admonition naming the data source (a warning if synthetic)."""
    from IPython.display import display

    title, text = "Data source", f"Numbers and images on this page come from {label}."
    if synthetic:
        title, text = "Synthetic data", (
            "Every number and image on this page comes from the <b>synthetic BONBID-like dataset</b> generated "
            "by <code>hie_core.synthetic</code> (same layout, sizes and lesion-burden strata as BONBID-HIE, no "
            "patient data). They describe the pipeline, not patients."
        )  # fmt: skip
    kind = "warning" if synthetic else "note"
    html = f'<div class="admonition {kind}"><p class="admonition-title">{title}</p><p>{text}</p></div>'
    display({"text/html": html, "text/markdown": f"> **{title}.** {text}"}, raw=True)


def captioned(table: pd.DataFrame, caption: str, precision: int = 2) -> Styler:
    """The table with a caption (e.g. naming the data source), floats at ``precision``, no index."""
    return table.style.set_caption(caption).format(precision=precision, na_rep="-").hide(axis="index")


def case_table(report: ValidationReport) -> pd.DataFrame:
    """``report.table()`` plus numeric geometry columns and the lesion-burden stratum per case."""
    table = report.table()
    geo = [r.geometry for r in report.cases]
    for i, axis in enumerate("dhw"):
        table[f"size_{axis}"] = [g.shape[i] for g in geo]
        table[f"spacing_{axis}_mm"] = [g.spacing_mm[i] for g in geo]
    table["stratum"] = [None if pd.isna(b) else burden_stratum(b) for b in table["burden_percent"]]
    return table


def _range(values: pd.Series, fmt: str = "{:.2f}") -> str:
    lo, hi = values.min(), values.max()
    return fmt.format(lo) if np.isclose(lo, hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def dataset_summary(report: ValidationReport) -> pd.DataFrame:
    """Per split (and all): cases, sizes, spacings, brain and lesion volumes, strata.

    Volumes are "median [min-max]" in ml; slices "min-median-max"; spacing ranges in mm.
    """
    table = case_table(report)
    groups = [(str(s), g) for s, g in table.groupby("split", sort=False, dropna=False)] + [("all", table)]
    rows = []
    for split, g in groups:
        in_plane = [f"{h}x{w}" for h, w in sorted(set(zip(g["size_h"], g["size_w"], strict=True)))]
        lesion = g["lesion_ml"].dropna()
        row = {
            "split": split,
            "cases": len(g),
            "in-plane sizes": ", ".join(in_plane),
            "slices (min-median-max)": f"{g['size_d'].min()}-{g['size_d'].median():g}-{g['size_d'].max()}",
            "in-plane spacing (mm)": _range(g["spacing_h_mm"]),
            "slice spacing (mm)": _range(g["spacing_d_mm"]),
            "brain ml (median [range])": f"{g['brain_ml'].median():.0f} [{_range(g['brain_ml'], '{:.0f}')}]",
            "lesion ml (median [range])": (
                f"{lesion.median():.1f} [{_range(lesion, '{:.1f}')}]" if len(lesion) else "-"
            ),
            "empty labels": int(g["empty_label"].fillna(False).astype(bool).sum()),
        }
        row.update({f"burden {s}": int((g["stratum"] == s).sum()) for s in BURDEN_STRATA})
        rows.append(row)
    return pd.DataFrame(rows)


def burden_figure(table: pd.DataFrame, label: str) -> go.Figure:
    """Lesion burden (% of brain volume, log axis) per split, one point per case, strata marked.

    Args:
        table: :func:`case_table` (columns ``split``, ``case_id``, ``burden_percent``).
        label: the data source, put in the title.
    """
    fig = go.Figure()
    shown = table[table["burden_percent"] > 0]
    for i, (split, g) in enumerate(shown.groupby("split", sort=False)):
        fig.add_box(
            x=g["burden_percent"], name=str(split), boxpoints="all", jitter=0.6, pointpos=0,
            marker=dict(color=PALETTE[i % len(PALETTE)], size=7), line=dict(width=1),
            hovertext=g["case_id"], hovertemplate="%{hovertext}: %{x:.3g}%<extra></extra>",
        )  # fmt: skip
    for edge in (1.0, 5.0):  # shapes take data values on a log axis, annotations log10 values
        fig.add_vline(x=edge, line=dict(dash="dash", color="gray"))
        fig.add_annotation(
            x=np.log10(edge), y=1.0, yref="paper", text=f"{edge:g}%", showarrow=False, yanchor="bottom"
        )
    n_empty = int((table["burden_percent"] == 0).sum())
    fig.update_xaxes(type="log", title_text="lesion burden (% of brain volume, log scale)")
    fig.update_layout(
        title=f"Lesion burden per case ({n_empty} empty label(s) not shown) - {label}",
        height=360, showlegend=False, margin=dict(t=70),
    )  # fmt: skip
    return fig


def sample_case(report: ValidationReport) -> Case:
    """The training case with the median non-zero lesion burden (lower median; ties by id).

    Falls back to all splits when the training split has no lesion, then to the first case.
    """
    ranked = sorted(
        (r for r in report.cases if r.burden_percent), key=lambda r: (r.burden_percent, r.case.case_id)
    )
    train = [r for r in ranked if r.case.split in ("train", None)] or ranked
    return train[(len(train) - 1) // 2].case if train else report.cases[0].case


def load_case(case: Case) -> dict[str, Any]:
    """``adc``, ``zadc``, ``label`` (bool, or None) arrays (D, H, W) and their ``geometry``."""
    adc, geometry = read_image(case.adc)
    zadc = read_image(case.zadc)[0]
    label = None if case.label is None else read_image(case.label)[0] > 0
    return {"adc": adc, "zadc": zadc, "label": label, "geometry": geometry, "case_id": case.case_id}


def sample_case_viewer(arrays: Mapping[str, Any], label: str) -> go.Figure:
    """ADC, ZADC and label as switchable maps; the label as a toggleable overlay on all of them."""
    from hie_core.report.figures import slice_viewer

    images = {"ADC": arrays["adc"], "ZADC": arrays["zadc"]}
    overlays = {}
    if arrays["label"] is not None:
        images["label"] = arrays["label"].astype(np.float32)
        overlays["ground truth"] = arrays["label"]
    return slice_viewer(
        images, overlays, arrays["geometry"].spacing_mm, title=f"{arrays['case_id']} - {label}",
        colors={"ground truth": "#00ff00"}, windows={"ZADC": (-5.0, 5.0), "label": (0.0, 1.0)},
    )  # fmt: skip


def sample_case_still(arrays: Mapping[str, Any], label: str) -> BookFigure:
    """The seed's Figures 2-5 at the busiest slice: ADC, ZADC, label, label over ADC."""
    mask = arrays["label"] if arrays["label"] is not None else np.zeros(arrays["adc"].shape, bool)
    k = busiest_slice({"label": mask}, mask.shape[0])
    r0, r1, c0, c1 = content_box([arrays["adc"]], margin=4)
    crop = (k, slice(r0, r1), slice(c0, c1))
    _, sy, sx = arrays["geometry"].spacing_mm
    adc8 = window_to_uint8(arrays["adc"])[0][crop]
    panels = {
        "ADC (10$^{-6}$ mm$^2$/s)": adc8,
        "ZADC (window -5..5)": window_to_uint8(arrays["zadc"][crop], (-5.0, 5.0))[0],
        "lesion label": mask[crop].astype(np.uint8) * 255,
        "label over ADC": compose_rgb(adc8, [(mask[crop], np.array([0.0, 1.0, 0.0]))], 0.5),
    }
    fig = BookFigure(figsize=(12, 3.6), layout="constrained")
    extent = (c0 * sx, c1 * sx, r1 * sy, r0 * sy)
    for ax, (title, img) in zip(fig.subplots(1, 4), panels.items(), strict=True):
        ax.imshow(img, cmap="gray", extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle(f"{arrays['case_id']}, slice {k} - {label}", fontsize=10)
    return fig


def _box(ax: Any, xy: tuple[float, float], text: str, size: tuple[float, float], color: str) -> None:
    """A rounded box of ``size`` (w, h) centred at ``xy`` with centred text."""
    box = FancyBboxPatch((xy[0] - size[0] / 2, xy[1] - size[1] / 2), *size, boxstyle="round,pad=0.02",
                         facecolor=color, edgecolor="black", linewidth=0.8)  # fmt: skip
    ax.add_patch(box)
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=8)


def _arrow(ax: Any, a: tuple[float, float], b: tuple[float, float], text: str = "", **style: Any) -> None:
    """An arrow from ``a`` to ``b``, optionally labelled above its middle."""
    ax.annotate("", b, a, arrowprops=dict(arrowstyle="-|>", color="black", lw=1, **style))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha="center", fontsize=7, color="dimgray")


def pipeline_figure() -> BookFigure:
    """The pipeline (the seed's Figure 1), its numbers read from the code's constants."""
    from hie_core.augment import TRANSFORM_NAMES, AugmentConfig
    from hie_core.losses import LOSS_NAMES
    from hie_core.model import DEFAULT_WIDTHS
    from hie_core.preprocess import DEFAULT_TARGET_SHAPE

    d, h, w = DEFAULT_TARGET_SHAPE
    stages = [
        ("BONBID-HIE folder\nADC, ZADC, label (.mha)", "#dbe9f6"),
        ("validation\ngrids, values, pairs", "#dbe9f6"),
        (f"preprocessing\nresample {w}x{h}x{d}\nz-score, 2 channels", "#e5f5e0"),
        (f"augmentation\n{len(TRANSFORM_NAMES)} transforms, p={AugmentConfig().p:g} each", "#e5f5e0"),
        (f"3D U-Net\nwidths {'-'.join(map(str, DEFAULT_WIDTHS))}\nlogits", "#fde0c5"),
        (f"loss\n{len(LOSS_NAMES)} compared", "#fde0c5"),
        ("prediction\nback to the\nnative grid", "#f2e1f2"),
        ("official metrics\nDice, MASD (mm),\nNSD @ 2 mm", "#f2e1f2"),
    ]
    fig = BookFigure(figsize=(11, 3.6), layout="constrained")
    ax = fig.subplots()
    pos = [(i * 2.6, 1.6) for i in range(4)] + [(i * 2.6, 0.0) for i in (3, 2, 1, 0)]
    for (text, color), xy in zip(stages, pos, strict=True):
        _box(ax, xy, text, (2.0, 0.95), color)
    for i in range(len(pos) - 1):
        (x0, y0), (x1, y1) = pos[i], pos[i + 1]
        if y0 == y1:
            sign = 1 if x1 > x0 else -1
            _arrow(ax, (x0 + sign * 1.02, y0), (x1 - sign * 1.02, y1))
        else:
            _arrow(ax, (x0, y0 - 0.5), (x1, y1 + 0.5))
    ax.text(pos[5][0], -0.75, "training: AdamW, early stopping on held-out training cases", ha="center")
    ax.set_xlim(-1.2, 9.0)
    ax.set_ylim(-1.0, 2.3)
    ax.set_axis_off()
    return fig


def preprocessing_table(native: ImageGeometry, grids: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Geometry of one case before (native) and after resampling to each grid (D, H, W)."""
    from hie_core.preprocess import resampled_geometry

    rows = [("native", native)] + [
        (f"{n} {tuple(s)}", resampled_geometry(native, tuple(s))) for n, s in grids.items()
    ]
    fmt = lambda v, p: " x ".join(f"{x:.{p}f}" if p else str(x) for x in v)  # noqa: E731
    return pd.DataFrame(
        [{"grid": name, "shape (D x H x W)": fmt(g.shape, 0), "spacing mm (D x H x W)": fmt(g.spacing_mm, 3),
          "extent mm (D x H x W)": fmt(g.extent_mm, 1), "voxel volume (mm3)": 1000 * g.voxel_volume_ml}
         for name, g in rows]
    )  # fmt: skip


_TIO_CLASS = {
    "noise": ("RandomNoise", ("noise_std",)),
    "anisotropy": ("RandomAnisotropy", ("anisotropy_downsampling",)),
    "blur": ("RandomBlur", ("blur_std_mm",)),
    "gamma": ("RandomGamma", ("log_gamma",)),
    "elastic": ("RandomElasticDeformation", ("elastic_control_points", "elastic_max_displacement_mm",
                                             "elastic_locked_borders")),
}  # fmt: skip


def augmentation_table(config: AugmentConfig) -> pd.DataFrame:
    """Each transform in the order applied, its TorchIO class, probability and parameters."""
    from hie_core.augment import TRANSFORM_NAMES

    return pd.DataFrame(
        [{"transform": name, "TorchIO": _TIO_CLASS[name][0], "probability": config.probability(name),
          "parameters": "; ".join(f"{f} = {getattr(config, f)}" for f in _TIO_CLASS[name][1])}
         for name in TRANSFORM_NAMES]
    )  # fmt: skip


def augmentation_examples(
    pre: PreprocessedCase, config: AugmentConfig, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each transform applied alone (probability 1, others 0) to a preprocessed case.

    Args:
        pre: the case on its training grid (image (2, D, H, W), label (1, D, H, W)).
        config: the transform parameters (its probabilities are overridden).
        seed: seed of every call (the same for each transform).

    Returns:
        Transform name -> augmented image (2, D, H, W) float32, in the order applied.
    """
    import torch

    from hie_core.augment import TRANSFORM_NAMES, TorchioAugmenter

    image = torch.from_numpy(np.ascontiguousarray(pre.image, dtype=np.float32))
    label = torch.from_numpy(np.zeros((1, *pre.image.shape[1:]), np.float32) if pre.label is None
                             else pre.label.astype(np.float32))  # fmt: skip
    out = {}
    for name in TRANSFORM_NAMES:
        alone = dataclasses.replace(config, p=0.0, **{f"p_{n}": float(n == name) for n in TRANSFORM_NAMES})
        out[name] = TorchioAugmenter(alone)(image, label, pre.geometry.spacing_mm, seed=seed)[0].numpy()
    return out


def preprocessing_figure(arrays: Mapping[str, Any], pre: PreprocessedCase, label: str) -> go.Figure:
    """Native ADC (left) against the preprocessed, z-scored ADC channel (right), labels toggled."""
    from hie_core.report.figures import preprocessing_viewer

    resampled_label = None if pre.label is None else pre.label[0]
    title = f"{arrays['case_id']}: native grid vs {pre.image.shape[1:]} - {label}"
    return preprocessing_viewer(arrays["adc"], arrays["geometry"].spacing_mm, pre.image[0], pre.geometry.spacing_mm,
                                arrays["label"], resampled_label, title=title)  # fmt: skip


def augmentation_figure(
    pre: PreprocessedCase, examples: Mapping[str, np.ndarray], label: str, channel: int = 0
) -> go.Figure:
    """Before/after viewer of :func:`augmentation_examples` for one channel (0 ADC, 1 ZADC)."""
    from hie_core.report.figures import augmentation_viewer

    name = ("ADC", "ZADC")[channel]
    return augmentation_viewer(pre.image[channel], {k: v[channel] for k, v in examples.items()},
                               pre.geometry.spacing_mm, title=f"{pre.case_id}, z-scored {name} - {label}")  # fmt: skip


def _unet_blocks(model_kwargs: Mapping[str, Any], shape: Sequence[int]) -> tuple[Any, list[dict]]:
    """The built model and one row per block (see :func:`unet_table`)."""
    from hie_core.model import UNet3D, count_parameters

    model = UNet3D(**model_kwargs)
    w, p = model.widths, model.dropout
    specs = [
        (f"encoder {i + 1}", enc[0].in_channels, w[i], i, p[i], enc) for i, enc in enumerate(model.encoders)
    ]
    specs.append(("bottleneck", w[2], w[3], 3, p[3], model.bottleneck))
    specs += [
        (f"decoder {3 - j}", w[3 - j], w[2 - j], 2 - j, 0.0, dec) for j, dec in enumerate(model.decoders)
    ]
    specs.append(("output 1x1x1", w[0], model.out_channels, 0, 0.0, model.head))
    keys = ("block", "in ch", "out ch", "feature map (D x H x W)", "dropout", "parameters")
    rows = [
        dict(zip(keys, (name, c_in, c_out, "x".join(str(int(s) // 2**lvl) for s in shape), drop,
                        count_parameters(module)), strict=True))
        for name, c_in, c_out, lvl, drop, module in specs
    ]  # fmt: skip
    return model, rows


def unet_table(
    model_kwargs: Mapping[str, Any] | None = None, shape: Sequence[int] = SEED_SHAPE
) -> pd.DataFrame:
    """Per block of :class:`hie_core.model.UNet3D`: channels, feature-map size, dropout, parameters."""
    return pd.DataFrame(_unet_blocks(model_kwargs or {}, shape)[1])


def unet_summary(
    model_kwargs: Mapping[str, Any] | None = None, shape: Sequence[int] = SEED_SHAPE
) -> pd.DataFrame:
    """One row: widths, parameters and forward GFLOP per volume (batch 1) on ``shape`` (D, H, W)."""
    from hie_core.model import count_parameters, forward_flops

    model, _ = _unet_blocks(model_kwargs or {}, shape)
    flops = forward_flops(model, (1, model.in_channels, *shape))
    return pd.DataFrame([{"input (C x D x H x W)": "x".join(map(str, (model.in_channels, *shape))),
                          "widths": "-".join(map(str, model.widths)), "parameters": count_parameters(model),
                          "forward GFLOP / volume": flops / 1e9}])  # fmt: skip


def unet_diagram(
    model_kwargs: Mapping[str, Any] | None = None, shape: Sequence[int] = SEED_SHAPE
) -> BookFigure:
    """Encoder (left), bottleneck (bottom), decoder (right), skips; sizes from the built model."""
    _, blocks = _unet_blocks(model_kwargs or {}, shape)
    enc, neck, dec, head = blocks[:3], blocks[3], blocks[4:7][::-1], blocks[7]
    fig = BookFigure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    text = lambda b: f"{b['block']}\n{b['in ch']} -> {b['out ch']} ch\n{b['feature map (D x H x W)']}"  # noqa: E731
    size = (2.0, 0.8)
    for lvl in range(3):
        _box(ax, (0, -lvl), text(enc[lvl]) + (f"\ndropout {enc[lvl]['dropout']:g}" if enc[lvl]["dropout"] else ""),
             size, "#dbe9f6")  # fmt: skip
        _box(ax, (5, -lvl), text(dec[lvl]), size, "#fde0c5")
        _arrow(ax, (1.02, -lvl), (3.98, -lvl), "skip: concatenate", linestyle="dashed")
        if lvl < 2:
            _arrow(ax, (0, -lvl - 0.42), (0, -lvl - 0.58))
            _arrow(ax, (5, -lvl - 0.58), (5, -lvl - 0.42))
    _box(ax, (2.5, -3), text(neck) + f"\ndropout {neck['dropout']:g}", size, "#e5f5e0")
    _arrow(ax, (0, -2.42), (1.48, -3))
    _arrow(ax, (3.52, -3), (5, -2.42))
    ax.text(
        0.6, -2.95, "max-pool 2x2x2\n(also between\nencoder levels)", ha="right", fontsize=7, color="dimgray"
    )
    ax.text(4.4, -2.95, "transposed conv 2x2x2\n(also between\ndecoder levels)", ha="left", fontsize=7,
            color="dimgray")  # fmt: skip
    _box(ax, (7.6, 0), f"{head['block']} conv\n-> {head['out ch']} logit map\n{head['feature map (D x H x W)']}",
         (1.9, 0.8), "#f2e1f2")  # fmt: skip
    _arrow(ax, (6.02, 0), (6.63, 0))
    _box(ax, (-2.4, 0), f"input\n{enc[0]['in ch']} ch (ADC, ZADC)\n{enc[0]['feature map (D x H x W)']}",
         (1.8, 0.8), "#eeeeee")  # fmt: skip
    _arrow(ax, (-1.48, 0), (-1.02, 0))
    ax.text(2.5, 0.75, "each block: (3x3x3 conv -> BatchNorm -> LeakyReLU) x 2, then dropout where given",
            ha="center", fontsize=8)  # fmt: skip
    ax.set_xlim(-3.4, 8.7)
    ax.set_ylim(-3.6, 1.0)
    ax.set_axis_off()
    return fig


def metric_rules_table(
    spacing_mm: Sequence[float] = (3.0, 1.0, 1.0), tolerance_mm: float = 2.0
) -> pd.DataFrame:
    """The official metrics on five tiny cases, computed by :func:`hie_core.metrics.case_metrics`.

    A 2x6x6-voxel cube in a (6, 16, 16) grid: identical, shifted by 1 and by 3 voxels along W
    (1 and 3 mm at the default spacing), and the three empty-mask rules.
    """
    ref = np.zeros((6, 16, 16), bool)
    ref[2:4, 5:11, 5:11] = True
    empty = np.zeros_like(ref)
    cases = {"identical": (ref, ref), "shifted 1 voxel in W": (np.roll(ref, 1, axis=2), ref),
             "shifted 3 voxels in W": (np.roll(ref, 3, axis=2), ref), "both empty": (empty, empty),
             "prediction empty": (empty, ref), "reference empty": (ref, empty)}  # fmt: skip
    rows = []
    for name, (pred, gt) in cases.items():
        m = case_metrics(pred, gt, spacing_mm, tolerance_mm)
        rows.append({"case": name, **{k: m[k] for k in ("n_pred", "n_ref", "dice", "masd_mm", "nsd")}})
    return pd.DataFrame(rows)


_PROTOCOL = (
    ("epochs", "maximum epochs"), ("patience", "early-stopping patience (epochs)"), ("batch_size", "batch size"),
    ("lr", "AdamW learning rate"), ("weight_decay", "AdamW weight decay"),
    ("lr_decay", "exponential LR decay per epoch"), ("l1", "L1 penalty on weights"),
    ("grad_clip", "gradient-norm clip"), ("target_shape", "grid (D, H, W)"), ("widths", "U-Net widths"),
    ("selection_fraction", "training cases held out for early stopping"),
    ("synthetic_preset", "synthetic set when no data_dir"), ("seed", "seed"),
)  # fmt: skip


def protocol_table() -> pd.DataFrame:
    """The seed and quick presets (:data:`hie_core.training.config.PRESETS`) over the ``TrainConfig`` defaults."""
    from hie_core.training.config import PRESETS, TrainConfig

    configs = {name: TrainConfig(preset=name, **values) for name, values in PRESETS.items()}
    rows = []
    for field, meaning in _PROTOCOL:
        row = {"setting": meaning, "field": field}
        row.update({name: str(getattr(cfg, field)) for name, cfg in configs.items()})
        row["from"] = "preset" if any(field in v for v in PRESETS.values()) else "TrainConfig default"
        rows.append(row)
    return pd.DataFrame(rows)
