"""What a network costs: parameters (:func:`~hie_core.model.count_parameters`), FLOPs of a
forward pass (:func:`~hie_core.model.forward_flops`, counted by
``torch.utils.flop_counter.FlopCounterMode`` on the meta device, so no memory or compute is
spent) and an estimate of a training step's memory
(:func:`~hie_core.model.training_memory_bytes`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from hie_core.model.archs import build_model

__all__ = ["count_parameters", "forward_flops", "training_memory_bytes"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_flops(model: nn.Module, shape: Sequence[int] = (1, 2, 32, 192, 192)) -> int:
    """FLOPs of one forward pass on an input of ``shape`` (B, C, D, H, W).

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2
    FLOPs; convolutions and matrix products only, so normalisation and activations are
    not included) on a meta-device copy of the model: nothing is allocated or computed.
    Works for every network of :func:`build_model` (SwinUNETR's attention is matrix products).

    Args:
        model: the network; it is not modified.
        shape: input shape (B, C, D, H, W).

    Returns:
        total forward FLOPs for the whole batch.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(tuple(int(s) for s in shape), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta_model(x)
    return int(counter.get_total_flops())


def training_memory_bytes(
    widths: Sequence[int],
    window: Sequence[int],
    batch_size: int,
    arch: str,
    norm: str,
    spacing_mm: Sequence[float] | None = None,
) -> int:
    """A generous estimate of one training step's activation memory in float32, in bytes.

    For ``unet3d``: each level ``l`` of the encoder and the decoder keeps about six maps of
    ``widths[l]`` channels (two convolutions, each with its norm and activation) at
    ``1 / 8**l`` of the window's voxels; the backward pass holds as much again. For the other
    networks the tensors autograd saves for the backward pass are counted on a dry forward
    pass on the meta device (nothing allocated or computed), and doubled for the gradients
    the backward pass holds (for the U-Net this count is about 0.45x the formula's, so the
    two are comparably generous). Measured steps use less (bf16, fused kernels): the
    estimate is for refusing sizes that cannot fit, not for tuning.

    Args:
        widths: Channel widths per level.
        window: The training input (D, H, W): the patch, or the whole grid.
        batch_size: Samples per step.
        arch: The network, one of :data:`ARCHS`.
        norm: Its normalisation, ``"batch"`` or ``"instance"`` (the dry pass builds it; the U-Net's
            formula holds for both).
        spacing_mm: The grid's spacing (D, H, W) in mm, or None (see :func:`arch_options`).
    """
    voxels = math.prod(int(v) for v in window)
    if arch == "unet3d":
        per_voxel = 2 * sum(6 * w / 8**level for level, w in enumerate(widths))  # encoder and decoder
        return int(batch_size * voxels * per_voxel * 4 * 2)
    no_dropout = (0.0,) * len(widths)  # only the U-Net has dropout, and its memory comes from the formula
    model = build_model(arch, 2, widths, no_dropout, norm, window_shape=window, spacing_mm=spacing_mm)
    model = model.to("meta").train()
    params = {id(p) for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in params:
            saved[id(t)] = t.numel() * 4
        return t

    # Counted at batch 2 (a batch of 1 with a 1-voxel bottleneck is refused by BatchNorm) and scaled.
    x = torch.empty((2, 2, *(int(v) for v in window)), device="meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return int(2 * sum(saved.values()) * batch_size / 2)
