"""The six training losses of the study, as MONAI defines them.

Every loss is a ``torch.nn.Module`` called as ``loss(logits, target, target_dt=None)``:

- ``logits``: float tensor (B, C, D, H, W), the model's raw output (a sigmoid is applied
  inside, as MONAI's ``sigmoid=True``). It is cast to float32 first, so a bf16 autocast
  forward still gets a float32 loss.
- ``target``: tensor of the same shape with values in {0, 1} (bool, integer or float).
- ``target_dt``: optional precomputed distance field of the target (see
  :func:`hausdorff_distance_field`); only the Hausdorff losses use it, the others ignore it.

Returns a scalar tensor. :func:`get_loss` builds them by name (:data:`LOSS_NAMES`):

========================  ====================================================================
``dice``                  ``monai.losses.DiceLoss(sigmoid=True)``
``dice_focal``            ``monai.losses.DiceFocalLoss(sigmoid=True)``: gamma 2, Dice + Focal 1:1
``tversky``               ``monai.losses.TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)``; in
                          MONAI ``alpha`` weights false positives and ``beta`` false negatives
``hdt``                   :class:`HausdorffDTLoss` (alpha 2), MONAI's ``HausdorffDTLoss(sigmoid=True)``
``dice_focal_hdt``        ``0.9 * dice_focal + 0.1 * log(1 + hdt)``
``tversky_hdt``           ``0.9 * tversky + 0.1 * log(1 + hdt)``
========================  ====================================================================

Dice, DiceFocal and Tversky are MONAI's own classes. The Hausdorff distance-transform
loss (Karimi & Salcudean 2019, IEEE TMI 39(2):499-513) is reimplemented here with MONAI's
exact arithmetic, but computes its distance transforms on the tensor's own device through
:func:`hie_core.distance.distance_transform_edt` (CuPy on CUDA, the multithreaded ``edt``
package on CPU) instead of MONAI's host SciPy, which made a GPU training step 20x slower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hie_core.distance import distance_transform_edt

__all__ = [
    "LOSS_NAMES",
    "LOSS_LABELS",
    "LOSS_SETTINGS",
    "loss_label",
    "get_loss",
    "HausdorffDTLoss",
    "HybridLoss",
    "MonaiLoss",
    "hausdorff_distance_field",
]

#: The six losses of the study, in the order of its tables.
LOSS_NAMES: tuple[str, ...] = ("dice", "dice_focal", "tversky", "hdt", "dice_focal_hdt", "tversky_hdt")
#: The one name of each loss that a reader sees in tables, legends and prose.
LOSS_LABELS: dict[str, str] = {"dice": "Dice", "dice_focal": "DiceFocal", "tversky": "Tversky", "hdt": "HausdorffDT",
                               "dice_focal_hdt": "DiceFocal+HDT", "tversky_hdt": "Tversky+HDT"}  # fmt: skip

#: Weights of the hybrid losses: ``HYBRID_WEIGHT * base + (1 - HYBRID_WEIGHT) * log(1 + hdt)``.
HYBRID_WEIGHT = 0.9
TVERSKY_ALPHA_FP = 0.3
TVERSKY_BETA_FN = 0.7
FOCAL_GAMMA = 2.0
HDT_ALPHA = 2.0

#: The losses' settings as run parameters, each with the seed's value, its short name in a
#: method's display name, and the losses it applies to.
LOSS_SETTINGS: dict[str, tuple[float, str, tuple[str, ...]]] = {
    "tversky_alpha": (TVERSKY_ALPHA_FP, "alpha", ("tversky", "tversky_hdt")),
    "tversky_beta": (TVERSKY_BETA_FN, "beta", ("tversky", "tversky_hdt")),
    "focal_gamma": (FOCAL_GAMMA, "gamma", ("dice_focal", "dice_focal_hdt")),
    "hdt_alpha": (HDT_ALPHA, "HDT alpha", ("hdt", "dice_focal_hdt", "tversky_hdt")),
    "hybrid_weight": (1.0 - HYBRID_WEIGHT, "w", ("dice_focal_hdt", "tversky_hdt")),
}


def loss_label(config: Mapping[str, Any]) -> str:
    """A run's loss as the reader sees it: the display name, plus every setting not at the seed's value.

    Args:
        config: a run's configuration (``config.json`` or ``TrainConfig.to_dict()``); settings
            it lacks are at the seed's values.

    Returns:
        e.g. ``"Tversky+HDT"`` or ``"Tversky+HDT (w 0.3)"``.
    """
    name = str(config.get("loss", ""))
    changed = [f"{short} {float(config[key]):g}" for key, (default, short, losses) in LOSS_SETTINGS.items()
               if name in losses and key in config and not math.isclose(float(config[key]), default)]  # fmt: skip
    label = LOSS_LABELS.get(name, name)
    return f"{label} ({', '.join(changed)})" if changed else label


def _prepare(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes; return float32 logits and float32 target."""
    if logits.ndim != 5:
        raise ValueError(f"logits must be (B, C, D, H, W), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}"
        )
    return logits.float(), target.to(device=logits.device, dtype=torch.float32)


@torch.no_grad()
def hausdorff_distance_field(mask: torch.Tensor, spacing_mm: Sequence[float] | None = None) -> torch.Tensor:
    """Distance field of MONAI's ``HausdorffDTLoss.distance_field``, on the mask's device.

    For each (batch item, channel) volume that is neither empty nor full, the field is
    ``edt(mask) + edt(~mask)``: at every voxel, the distance to the nearest voxel of the
    other class (so 1 voxel next to the boundary on either side). Empty and full volumes get
    a field of zeros (no boundary, so that mask adds no distance weight to the loss; the
    other mask's field still does).
    MONAI passes one channel at a time, so this per-(b, c) rule is its rule.

    Args:
        mask: (B, C, D, H, W) boolean mask, or any tensor thresholded as ``mask > 0.5``
            (MONAI's threshold, applied to probabilities).
        spacing_mm: voxel size (D, H, W) in mm; ``None`` (the default) gives distances in
            voxels, as MONAI does, so the loss equals MONAI's.

    Returns:
        float32 tensor (B, C, D, H, W) on the mask's device.
    """
    fg = mask if mask.dtype == torch.bool else mask > 0.5
    flat = fg.flatten(2)
    # Decided on the device, not per volume on the host: no synchronisation in a CUDA step.
    has_boundary = (flat.any(-1) & ~flat.all(-1))[..., None, None, None]
    fields = torch.stack(
        [
            distance_transform_edt(v, spacing_mm) + distance_transform_edt(~v, spacing_mm)
            for v in fg.flatten(0, 1)
        ]
    ).view(fg.shape)
    return torch.where(has_boundary, fields, torch.zeros((), device=fg.device))


class HausdorffDTLoss(nn.Module):
    """Hausdorff distance-transform loss (Karimi & Salcudean 2019), MONAI's formula.

    With ``p = sigmoid(logits)``, ``g = target`` and distance fields ``d_p`` of
    ``p.detach() > 0.5`` and ``d_g`` of ``g`` (:func:`hausdorff_distance_field`):
    ``loss = mean((p - g)^2 * (d_p^alpha + d_g^alpha))`` over all of (B, C, D, H, W),
    which equals MONAI's mean over the per-(b, c) spatial means. The gradient flows through
    ``p`` only (the fields are constants). Distances are in voxels by default, as in MONAI.

    Args:
        alpha: exponent of the distances (2, the paper's and MONAI's default).
        spacing_mm: voxel size (D, H, W) in mm for distances in mm; ``None`` = voxels.
    """

    def __init__(self, alpha: float = HDT_ALPHA, spacing_mm: Sequence[float] | None = None) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.spacing_mm = None if spacing_mm is None else tuple(float(s) for s in spacing_mm)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar).

        Args:
            logits: (B, C, D, H, W) raw model output.
            target: (B, C, D, H, W) binary target.
            target_dt: optional ``hausdorff_distance_field(target, spacing_mm)``, e.g.
                computed once per case in the data pipeline; used instead of recomputing it.
        """
        logits, target = _prepare(logits, target)
        prob = torch.sigmoid(logits)
        pred_dt = hausdorff_distance_field(prob.detach() > 0.5, self.spacing_mm)
        if target_dt is None:
            target_dt = hausdorff_distance_field(target > 0.5, self.spacing_mm)
        elif target_dt.shape != target.shape:
            raise ValueError(
                f"target_dt shape {tuple(target_dt.shape)} differs from target {tuple(target.shape)}"
            )
        distance = pred_dt**self.alpha + target_dt.to(device=logits.device, dtype=torch.float32) ** self.alpha
        return ((prob - target) ** 2 * distance).mean()


class MonaiLoss(nn.Module):
    """A MONAI loss with this module's ``(logits, target, target_dt=None)`` signature."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar); ``target_dt`` is accepted for a uniform signature and ignored."""
        logits, target = _prepare(logits, target)
        return self.loss(logits, target)


class HybridLoss(nn.Module):
    """``weight * base + (1 - weight) * log(1 + hdt)``, the seed's hybrid losses.

    Args:
        base: a region loss with the ``(logits, target, target_dt)`` signature.
        hdt: the Hausdorff distance-transform loss (its fields are computed once per call).
        weight: weight of ``base`` (0.9 in the seed).
    """

    def __init__(self, base: nn.Module, hdt: HausdorffDTLoss, weight: float = HYBRID_WEIGHT) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.base = base
        self.hdt = hdt
        self.weight = float(weight)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar); ``target_dt`` as in :meth:`HausdorffDTLoss.forward`."""
        region = self.base(logits, target)
        return self.weight * region + (1.0 - self.weight) * torch.log1p(self.hdt(logits, target, target_dt))


def _monai(name: str) -> MonaiLoss:
    from monai.losses import DiceFocalLoss, DiceLoss, TverskyLoss

    if name == "dice":
        return MonaiLoss(DiceLoss(sigmoid=True))
    if name == "dice_focal":
        return MonaiLoss(DiceFocalLoss(sigmoid=True, gamma=FOCAL_GAMMA, lambda_dice=1.0, lambda_focal=1.0))
    return MonaiLoss(TverskyLoss(sigmoid=True, alpha=TVERSKY_ALPHA_FP, beta=TVERSKY_BETA_FN))


def get_loss(name: str, spacing_mm: Sequence[float] | None = None) -> nn.Module:
    """Build one of the six study losses by name.

    Args:
        name: one of :data:`LOSS_NAMES`.
        spacing_mm: voxel size (D, H, W) in mm for the Hausdorff distance fields; ``None``
            (default) keeps MONAI's voxel units. Ignored by the losses without a Hausdorff term.

    Returns:
        a module called as ``loss(logits, target, target_dt=None)`` -> scalar tensor. Its
        attribute ``needs_distance`` tells whether ``target_dt`` is used.
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    if name == "hdt":
        loss: nn.Module = HausdorffDTLoss(HDT_ALPHA, spacing_mm)
    elif name.endswith("_hdt"):
        loss = HybridLoss(_monai(name.removesuffix("_hdt")), HausdorffDTLoss(HDT_ALPHA, spacing_mm))
    else:
        loss = _monai(name)
    loss.needs_distance = name.endswith("hdt")
    return loss
