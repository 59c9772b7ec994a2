"""Losses of a researcher's own, for tests of ``loss="package.module:Name"`` (not a test module itself)."""

from __future__ import annotations

import torch
from torch import nn


class BoundaryBCE(nn.Module):
    """Binary cross-entropy, each voxel weighted by ``1 + exp(-target_dt)``: heavier near the boundary.

    Records what the training machinery gave it (class attributes, reset by the tests): the
    settings it was built with and how many calls received a ``target_dt``.
    """

    label = "Boundary BCE"
    needs_distance = True
    built_with: list[dict] = []
    calls_with_dt = 0
    calls_without_dt = 0

    def __init__(self, hybrid_weight: float = 0.1, spacing_mm=None) -> None:
        super().__init__()
        self.hybrid_weight = hybrid_weight
        type(self).built_with.append({"hybrid_weight": hybrid_weight, "spacing_mm": spacing_mm})

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        from hie_core.losses import hausdorff_distance_field

        target = target.float()
        if target_dt is None:
            type(self).calls_without_dt += 1
            target_dt = hausdorff_distance_field(target)
        else:
            type(self).calls_with_dt += 1
        weight = 1.0 + torch.exp(-target_dt)
        bce = nn.functional.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
        return (weight * bce).mean()


class PlainDice(nn.Module):
    """Soft Dice without a ``label`` or ``needs_distance``: the defaults apply."""

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        prob, target = torch.sigmoid(logits.float()), target.float()
        return 1.0 - (2.0 * (prob * target).sum() + 1e-5) / (prob.sum() + target.sum() + 1e-5)


class NotAModule:
    """Has a forward, but is not a ``torch.nn.Module``."""

    def forward(self, logits, target, target_dt=None):
        return logits.mean()


class TwoArguments(nn.Module):
    """A module whose forward cannot take ``target_dt``."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.mean()


not_a_class = 3
