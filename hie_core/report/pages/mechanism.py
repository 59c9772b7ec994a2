"""How each loss's gradient treats a small and a large lesion: a figure computed with the losses.

A toy scene (:func:`lesion_scene`) holds two spherical lesions in one volume, a small and a large
one, in the same axial slice. The prediction is what a network produces early in training: the
reference shrunk by the same margin on both lesions and softened (a logit that falls linearly with
the distance from each lesion's centre). Each of the six losses of :mod:`hie_core.losses`, built by
:func:`hie_core.losses.get_loss` at the seed's settings, is evaluated on it and differentiated
with autograd (:func:`loss_gradients`): the gradient with respect to each voxel's logit is what
the loss asks the network to change there.

:func:`gradient_table` sums the magnitude of that gradient around each lesion (each voxel goes to
the lesion whose surface is nearer) and splits the lesion's share into the part that raises the
logit (pushing a missed lesion voxel up) and the part that lowers it. The optimiser (AdamW)
rescales the gradient as a whole, so what separates the losses is not its size but where it goes:
the *share* of the gradient on the small lesion, against the small lesion's share of the missed
voxels. :func:`mechanism_figure` draws the gradient's magnitude in the slice through both lesions,
one panel per loss, each on its own scale, beside the shares.

Everything is computed on the page from ``hie_core.losses``; nothing is typed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from hie_core.losses import LOSS_LABELS, LOSS_NAMES, get_loss
from hie_core.report.viewers.display import BookFigure

__all__ = [
    "LesionScene",
    "gradient_table",
    "lesion_scene",
    "loss_gradients",
    "mechanism_figure",
    "near_empty",
]

#: Text size (pt) of the figure: at the BookFigure's 110 dpi, 10 pt is about 15 px at full size.
FONT_PT = 10


@dataclass(frozen=True)
class LesionScene:
    """A toy volume with a small and a large spherical lesion and a softened, shrunk prediction.

    Attributes:
        target: (D, H, W) bool reference label (both lesions).
        logits: (D, H, W) float32 prediction logits (the shrunk, softened reference).
        nearest_small: (D, H, W) bool, the voxels nearer the small lesion's surface than the large one's.
        small_radius, large_radius: the lesions' radii in voxels.
        shrink: how far (voxels) the prediction's 0.5 surface lies inside each lesion's surface.
        slice_index: the axial slice (D index) through both centres.
    """

    target: np.ndarray
    logits: np.ndarray
    nearest_small: np.ndarray
    small_radius: float
    large_radius: float
    shrink: float
    slice_index: int

    @property
    def small(self) -> np.ndarray:
        """(D, H, W) bool: the small lesion's reference voxels."""
        return self.target & self.nearest_small

    @property
    def large(self) -> np.ndarray:
        """(D, H, W) bool: the large lesion's reference voxels."""
        return self.target & ~self.nearest_small


def lesion_scene(
    shape: Sequence[int] = (16, 40, 64),
    small_radius: float = 2.0,
    large_radius: float = 7.0,
    shrink: float = 1.0,
    softness: float = 1.0,
) -> LesionScene:
    """Two spheres (voxel units, isotropic) and a prediction shrunk by ``shrink`` voxels on both.

    Args:
        shape: (D, H, W) of the volume; the lesions lie in slice ``D // 2``, the small one in the
            left third of W, the large one in the right half.
        small_radius, large_radius: radii in voxels (the small one must be larger than ``shrink``).
        shrink: voxels by which the prediction's 0.5 surface lies inside each reference surface.
        softness: voxels over which the logit changes by 1 (a larger value, a blurrier prediction).

    Returns:
        The :class:`LesionScene`.
    """
    if not 0 <= shrink < small_radius < large_radius:
        raise ValueError(
            f"need 0 <= shrink < small_radius < large_radius, got {shrink}, {small_radius}, {large_radius}"
        )
    d, h, w = (int(s) for s in shape)
    if min(d, h) < 2 * large_radius + 2 or w < 2 * (small_radius + large_radius) + 6:
        raise ValueError(f"shape {tuple(shape)} is too small for radii {small_radius} and {large_radius}")
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in (d, h, w)), indexing="ij"))
    centres = (np.array([d // 2, h // 2, small_radius + 3]), np.array([d // 2, h // 2, w - large_radius - 3]))
    dist = [np.sqrt(((grid - c[:, None, None, None]) ** 2).sum(0)) for c in centres]
    # signed distance to each sphere's surface (negative inside); a voxel belongs to the nearer surface
    signed = (dist[0] - small_radius, dist[1] - large_radius)
    nearest_small = signed[0] < signed[1]
    target = (signed[0] <= 0) | (signed[1] <= 0)
    logits = -(np.minimum(signed[0], signed[1]) + shrink) / softness
    return LesionScene(target, logits.astype(np.float32), nearest_small, float(small_radius), float(large_radius),
                       float(shrink), d // 2)  # fmt: skip


def loss_gradients(scene: LesionScene, losses: Sequence[str] = LOSS_NAMES) -> dict[str, np.ndarray]:
    """The gradient of each loss (at the seed's settings, distances in voxels) with respect to every voxel's logit.

    Returns:
        A dict from each loss name to its (D, H, W) float64 gradient, negative where the loss raises that
        voxel's logit.
    """
    target = torch.from_numpy(scene.target)[None, None].float()
    out = {}
    for name in losses:
        logits = torch.from_numpy(scene.logits)[None, None].clone().requires_grad_(True)
        get_loss(name)(logits, target).backward()
        out[name] = logits.grad[0, 0].double().numpy()
    return out


def near_empty(scene: LesionScene, probability: float = 0.1) -> LesionScene:
    """The same scene with a prediction of ``probability`` at every voxel: a network that has
    (almost) stopped predicting lesions, no voxel above 0.5."""
    if not 0 < probability < 0.5:
        raise ValueError(f"probability must be in (0, 0.5), got {probability}")
    logit = np.float32(np.log(probability / (1 - probability)))
    return replace(scene, logits=np.full_like(scene.logits, logit))


def gradient_table(
    scene: LesionScene, gradients: Mapping[str, np.ndarray], empty_gradients: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Where each loss's gradient goes, one row per loss.

    Args:
        scene: The scene of ``gradients`` (:func:`lesion_scene`).
        gradients: :func:`loss_gradients` of ``scene``.
        empty_gradients: :func:`loss_gradients` of :func:`near_empty` of the same scene.

    Returns:
        A frame with one row per loss. ``loss`` is its display name; ``small_share`` the share of the
        gradient's total magnitude on the voxels nearer the small lesion; ``missed_share`` the small
        lesion's share of the missed reference voxels (logit < 0 inside the reference), what a loss
        that weighs every missed voxel alike would give it; ``per_voxel_ratio`` the mean magnitude on a
        small-lesion reference voxel over that on a large-lesion one; ``raise_share_empty``, at the
        near-empty prediction, the share of the magnitude that raises logits (a negative gradient,
        towards finding the lesions), the rest lowering them (towards predicting nothing).
    """
    missed = scene.target & (scene.logits < 0)
    missed_share = float((missed & scene.nearest_small).sum() / max(int(missed.sum()), 1))
    rows = []
    for name, g in gradients.items():
        mag, empty = np.abs(g), empty_gradients[name]
        total, total_empty = float(mag.sum()), float(np.abs(empty).sum())
        large_voxel = float(mag[scene.large].mean())
        rows.append({
            "loss": LOSS_LABELS.get(name, name),
            "small_share": float(mag[scene.nearest_small].sum()) / total if total else float("nan"),
            "missed_share": missed_share,
            "per_voxel_ratio": float(mag[scene.small].mean()) / large_voxel if large_voxel else float("nan"),
            "raise_share_empty": float(-empty[empty < 0].sum()) / total_empty if total_empty else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def mechanism_figure(table: pd.DataFrame, scene: LesionScene, gradients: Mapping[str, np.ndarray],
                     title: str = "") -> BookFigure:  # fmt: skip
    """The gradient's magnitude in the slice through both lesions, one panel per loss, and two bar charts.

    Each panel has its own colour scale (0 to its maximum: the optimiser rescales the gradient as a
    whole); the reference outline is drawn on every panel. Below, from ``table``
    (:func:`gradient_table`): each loss's share of its gradient on the small lesion, with the small
    lesion's share of the missed voxels as a dashed line, and, at the near-empty prediction, the
    share of the gradient that raises logits.
    """
    from matplotlib.lines import Line2D

    k = scene.slice_index
    n = len(gradients)
    cols = 2
    rows = (n + cols - 1) // cols
    fig = BookFigure(figsize=(6.4, 1.45 * rows + 2.6), layout="constrained")
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1] * rows + [1.9])
    for i, (name, g) in enumerate(gradients.items()):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        mag = np.abs(g[k])
        ax.imshow(mag, cmap="magma", vmin=0, vmax=float(mag.max()) or 1.0, interpolation="nearest")
        ax.contour(scene.target[k].astype(float), levels=[0.5], colors="#56B4E9", linewidths=0.8)
        ax.set_title(LOSS_LABELS.get(name, name), fontsize=FONT_PT)
        ax.set_xticks([])
        ax.set_yticks([])
    y = np.arange(len(table))
    bars = (("small_share", "share on the small lesion\n(shrunk prediction)", "#0072B2"),
            ("raise_share_empty", "share raising logits\n(near-empty prediction)", "#009E73"))  # fmt: skip
    for j, (column, label, colour) in enumerate(bars):
        ax = fig.add_subplot(grid[rows, j])
        ax.barh(y, table[column], color=colour)
        ax.set_yticks(y, table["loss"] if j == 0 else [], fontsize=FONT_PT)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=FONT_PT)
        ax.set_xlabel(label, fontsize=FONT_PT)
        if column == "small_share":
            ax.axvline(table["missed_share"].iloc[0], color="#D55E00", linestyle="--", linewidth=1.5)
            ax.legend([Line2D([], [], color="#D55E00", linestyle="--")], ["share of\nmissed voxels"],
                      fontsize=FONT_PT, loc="lower right", frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=FONT_PT)
    fig.csv_data, fig.csv_name = table, "loss-gradients"
    fig.alt = (f"{n} heat maps, one per loss, of the gradient's magnitude in a slice through a small lesion "
               "(left) and a large one (right), each outlined; under them two bar charts per loss: the share of "
               "the gradient on the small lesion for a shrunk prediction, beside a dashed line at the small "
               "lesion's share of the missed voxels, and the share that raises logits at a near-empty prediction.")  # fmt: skip
    return fig
