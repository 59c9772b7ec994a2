"""An exploratory seventh loss aimed at small lesions: Tversky + Focal + log(1 + Hausdorff DT).

**Not in the seed study.** This is a worked example of a researcher's own loss (the contract is
in :mod:`hie_core.losses`), run with
``papermill notebooks/train.ipynb out.ipynb -p loss hie_core.contrib.small_lesion:TverskyHDTFocal``
or ``python -m hie_core.study --losses tversky_hdt,hie_core.contrib.small_lesion:TverskyHDTFocal``.

Why this mix: HIE lesions are often a few dozen voxels. The loss combines three terms that each
favour them:

- Tversky (Salehi et al. 2017, MONAI's ``TverskyLoss``) with false negatives weighted above false
  positives (the run's ``tversky_alpha`` 0.3 / ``tversky_beta`` 0.7), so a missed small lesion
  costs more than a few extra voxels;
- Focal (Lin et al. 2017, MONAI's ``FocalLoss``, the run's ``focal_gamma``), which down-weights
  the many easy background voxels;
- ``log(1 + HDT)``, the seed hybrids' boundary term (Karimi & Salcudean 2019,
  :class:`hie_core.losses.HausdorffDTLoss`, the run's ``hdt_alpha``), weighted by the run's
  ``hybrid_weight``.

The same three terms are the loss of SPARSeg (MICCAI 2025; a 2D UNet++ with Tversky +
log-Hausdorff + Focal), the best published result on the BONBID-HIE 2023 test set (Dice 0.606,
MASD 2.65 mm, NSD 0.748, on the 44 test cases). The weights here are this project's (the region
terms 1:1, like the seed's DiceFocal, and the seed's hybrid weight), not SPARSeg's, and the
network is the run's, not a 2D UNet++: a result of this loss is not a reproduction of SPARSeg.

    loss = (1 - w) * (Tversky + Focal) + w * log(1 + HDT)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hie_core.losses import LOSS_SETTINGS, HausdorffDTLoss, MonaiLoss

__all__ = ["TverskyHDTFocal"]


class TverskyHDTFocal(nn.Module):
    """``(1 - w) * (Tversky + Focal) + w * log(1 + HDT)``: exploratory, not one of the seed's six.

    Args:
        tversky_alpha: Tversky weight of false positives (MONAI's ``alpha``; 0.3).
        tversky_beta: Tversky weight of false negatives (MONAI's ``beta``; 0.7).
        focal_gamma: focal exponent (2).
        hdt_alpha: exponent of the distances in the Hausdorff term (2).
        hybrid_weight: ``w``, the weight of ``log(1 + HDT)`` (0.1); the region terms get ``1 - w``.
        spacing_mm: voxel size (D, H, W) in mm for the distances; None = voxels (MONAI's units).
    """

    #: Its display name in tables, figures and prose (:func:`hie_core.losses.loss_label`).
    label = "Tversky+Focal+HDT (exploratory)"
    #: The training step passes the target's distance field (see :mod:`hie_core.losses`).
    needs_distance = True

    def __init__(
        self,
        tversky_alpha: float = LOSS_SETTINGS["tversky_alpha"].default,
        tversky_beta: float = LOSS_SETTINGS["tversky_beta"].default,
        focal_gamma: float = LOSS_SETTINGS["focal_gamma"].default,
        hdt_alpha: float = LOSS_SETTINGS["hdt_alpha"].default,
        hybrid_weight: float = LOSS_SETTINGS["hybrid_weight"].default,
        spacing_mm: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        from monai.losses import FocalLoss, TverskyLoss

        if not 0.0 <= hybrid_weight <= 1.0:
            raise ValueError(f"hybrid_weight must be in [0, 1], got {hybrid_weight}")
        self.tversky = MonaiLoss(TverskyLoss(sigmoid=True, alpha=tversky_alpha, beta=tversky_beta))
        self.focal = MonaiLoss(FocalLoss(gamma=focal_gamma, use_softmax=False))
        self.hdt = HausdorffDTLoss(hdt_alpha, spacing_mm)
        self.hybrid_weight = float(hybrid_weight)

    @property
    def spacing_mm(self) -> tuple[float, ...] | None:
        """Voxel size (D, H, W) in mm of the Hausdorff term's distances, or None for voxels."""
        return self.hdt.spacing_mm

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar tensor, float32).

        Args:
            logits: (B, C, D, H, W) raw model output.
            target: (B, C, D, H, W) binary target.
            target_dt: optional ``hausdorff_distance_field(target, spacing_mm)``; computed here when None.
        """
        region = self.tversky(logits, target) + self.focal(logits, target)
        boundary = torch.log1p(self.hdt(logits, target, target_dt))
        return (1.0 - self.hybrid_weight) * region + self.hybrid_weight * boundary
