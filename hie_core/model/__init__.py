"""The networks a run can train, each returning logits: the seed's 3D U-Net and three of MONAI's.

:func:`build_model` builds any of :data:`ARCHS` (see its docstring for how each one's sizes
follow from the configuration), :func:`check_arch` says whether a training window suits it.
:class:`UNet3D` is the seed's network and the default (its architecture is described in
``hie_core.model.unet``). :func:`count_parameters`, :func:`forward_flops` and
:func:`training_memory_bytes` say what a network costs (FLOPs counted on the meta device, so no
memory or compute is spent).

The package in three parts: ``unet`` (the seed's U-Net), ``archs`` (the networks and how each is
built) and ``cost`` (parameters, FLOPs, memory). Every name below is importable from
``hie_core.model``.
"""

from __future__ import annotations

from hie_core.model import archs as _archs
from hie_core.model import unet as _unet
from hie_core.model.archs import arch_divisors, arch_options, build_model, check_arch, output_conv
from hie_core.model.cost import count_parameters, forward_flops, training_memory_bytes
from hie_core.model.unet import UNet3D

__all__ = ["UNet3D", "count_parameters", "forward_flops", "training_memory_bytes", "DIVISOR", "NORMS", "ARCHS",
           "ARCH_LABELS", "build_model", "arch_options", "arch_divisors", "check_arch", "output_conv",
           "SWIN_DIVISOR"]  # fmt: skip

# The constants again under the package's name, with the documentation they are read by.
#: Every spatial size must be a multiple of this (three 2x2x2 max-pools).
DIVISOR: int = _unet.DIVISOR
#: The normalisation layers a U-Net can use, the seed's BatchNorm or InstanceNorm (nnU-Net's choice for patches).
NORMS: tuple[str, ...] = _unet.NORMS
#: The networks a run can train (the seed's 3D U-Net and three of MONAI's).
ARCHS: tuple[str, ...] = _archs.ARCHS
#: The one name of each network that a reader sees.
ARCH_LABELS: dict[str, str] = _archs.ARCH_LABELS
#: Every side of a SwinUNETR input must be a multiple of this (a 2x2x2 patch embedding, then four 2x merges).
SWIN_DIVISOR: int = _archs.SWIN_DIVISOR
