"""Diagrams drawn from the code: the pipeline (the seed's Figure 1) and the U-Net's blocks.

Matplotlib :class:`hie_core.report.viewers.display.BookFigure` objects (PNG without pyplot); every
number on them is read from a configuration or the built model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.patches import FancyBboxPatch

from hie_core.config import DEFAULTS
from hie_core.metrics import NSD_TOLERANCE_MM
from hie_core.report.pages.methods_page import unet_blocks
from hie_core.report.viewers.display import BookFigure

__all__ = ["pipeline_figure", "unet_diagram"]


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


def pipeline_figure(config: Mapping[str, Any] | None = None) -> BookFigure:
    """The pipeline (the seed's Figure 1), its numbers read from a run configuration and the code.

    Args:
        config: ``TrainConfig`` fields (``target_shape`` or ``target_spacing_mm``, ``widths``) of
            the study; None: the schema's defaults (the seed's grid and widths).
    """
    from hie_core.augment import TRANSFORM_NAMES, AugmentConfig
    from hie_core.losses import LOSS_NAMES
    from hie_core.report.analysis.runs import run_grid

    config = config or DEFAULTS
    grid = run_grid(config).describe().replace(" × ", "×").replace(" voxels", "")
    widths = config["widths"]
    stages = [
        ("BONBID-HIE folder\nADC, ZADC, label (.mha)", "#dbe9f6"),
        ("validation\ngrids, values, pairs", "#dbe9f6"),
        (f"preprocessing\nresample to\n{grid}\nz-score, 2 channels", "#e5f5e0"),
        (f"augmentation\n{len(TRANSFORM_NAMES)} transforms, p={AugmentConfig().p:g} each", "#e5f5e0"),
        (f"3D U-Net\nwidths {'-'.join(map(str, widths))}\nlogits", "#fde0c5"),
        (f"loss\n{len(LOSS_NAMES)} compared", "#fde0c5"),
        ("prediction\nback to the\nnative grid", "#f2e1f2"),
        (f"official metrics\nDice, MASD (mm),\nNSD @ {NSD_TOLERANCE_MM:g} mm", "#f2e1f2"),
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
    steps = "; ".join(f"{i + 1}. " + text.replace("\n", " ") for i, (text, _) in enumerate(stages))
    fig.alt = f"Flow chart of the pipeline in {len(stages)} steps, left to right, then back along a second row: {steps}."
    return fig


def unet_diagram(model_kwargs: Mapping[str, Any], shape: Sequence[int]) -> BookFigure:
    """Encoder (left), bottleneck (bottom), decoder (right), skips; sizes from the model built with
    ``model_kwargs`` (:func:`~hie_core.report.pages.methods_page.unet_kwargs`) for an input of ``shape``."""
    _, blocks = unet_blocks(model_kwargs, shape)
    enc, neck, dec, head = blocks[:3], blocks[3], blocks[4:7][::-1], blocks[7]
    fig = BookFigure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    text = lambda b: f"{b['block']}\n{b['in ch']} -> {b['out ch']} ch\n{b['feature map (D × H × W)']}"  # noqa: E731
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
        0.6, -2.95, "max-pool 2×2×2\n(also between\nencoder levels)", ha="right", fontsize=7, color="dimgray"
    )
    ax.text(4.4, -2.95, "transposed conv 2×2×2\n(also between\ndecoder levels)", ha="left", fontsize=7,
            color="dimgray")  # fmt: skip
    _box(ax, (7.6, 0), f"{head['block']} conv\n-> {head['out ch']} logit map\n{head['feature map (D × H × W)']}",
         (1.9, 0.8), "#f2e1f2")  # fmt: skip
    _arrow(ax, (6.02, 0), (6.63, 0))
    _box(ax, (-2.4, 0), f"input\n{enc[0]['in ch']} ch (ADC, ZADC)\n{enc[0]['feature map (D × H × W)']}",
         (1.8, 0.8), "#eeeeee")  # fmt: skip
    _arrow(ax, (-1.48, 0), (-1.02, 0))
    norm = {"batch": "BatchNorm", "instance": "InstanceNorm"}[model_kwargs["norm"]]
    ax.text(2.5, 0.75, f"each block: (3×3×3 conv -> {norm} -> LeakyReLU) × 2, then dropout where given",
            ha="center", fontsize=8)  # fmt: skip
    ax.set_xlim(-3.4, 8.7)
    ax.set_ylim(-3.6, 1.0)
    ax.set_axis_off()
    said = lambda b: f"{b['block']} ({b['in ch']} to {b['out ch']} channels, {b['feature map (D × H × W)']})"  # noqa: E731
    fig.alt = (f"Diagram of the 3D U-Net: the input of {enc[0]['in ch']} channels (ADC, ZADC) at "
               f"{enc[0]['feature map (D × H × W)']} voxels goes down the encoder, "
               f"{', '.join(said(b) for b in enc)}, to the {said(neck)}, and up the decoder, "
               f"{', '.join(said(b) for b in dec[::-1])}, each decoder block concatenating the encoder block of its "
               f"level (skip); a {head['block']} convolution gives {head['out ch']} logit map of "
               f"{head['feature map (D × H × W)']} voxels. Each block: two 3D convolutions with {norm} and LeakyReLU.")  # fmt: skip
    return fig
