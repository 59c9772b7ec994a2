"""Losses that break the contract of ``hie_core.losses``, for the tests of the checks (not a test module)."""

from __future__ import annotations

import torch
from torch import nn


class PerVoxel(nn.Module):
    """Returns the per-voxel loss: not a scalar."""

    def forward(self, logits, target, target_dt=None):
        return (torch.sigmoid(logits) - target) ** 2


class Detached(nn.Module):
    """Returns a scalar cut from the graph: no gradient reaches the network."""

    def forward(self, logits, target, target_dt=None):
        return ((torch.sigmoid(logits) - target) ** 2).mean().detach()


class Constant(nn.Module):
    """Returns a scalar that does not depend on the logits at all."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, logits, target, target_dt=None):
        return self.bias + 1.0


class AlwaysNaN(nn.Module):
    """Returns NaN, with a gradient."""

    def forward(self, logits, target, target_dt=None):
        return logits.mean() * float("nan")


class Raises(nn.Module):
    """Fails inside forward on a valid batch."""

    def forward(self, logits, target, target_dt=None):
        return logits.view(-1, 7).mean()


class BadInit(nn.Module):
    """A constructor that refuses the run's hybrid weight."""

    def __init__(self, hybrid_weight: float = 0.1) -> None:
        super().__init__()
        if hybrid_weight != 0.25:
            raise ValueError("hybrid_weight must be 0.25")

    def forward(self, logits, target, target_dt=None):
        return ((torch.sigmoid(logits) - target) ** 2).mean()
