"""The networks a run can train and how each is built from the configuration:
:func:`~hie_core.model.build_model` builds any of :data:`~hie_core.model.ARCHS` (the seed's U-Net
and three of MONAI's), :func:`~hie_core.model.arch_options` derives each one's settings,
:func:`~hie_core.model.check_arch` says whether a training window suits it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from hie_core.errors import ConfigError
from hie_core.model.unet import DIVISOR, NORMS, UNet3D

__all__ = [
    "ARCHS",
    "ARCH_LABELS",
    "SWIN_DIVISOR",
    "arch_divisors",
    "arch_options",
    "build_model",
    "check_arch",
    "output_conv",
]

#: The networks a run can train (the seed's 3D U-Net and three of MONAI's).
ARCHS: tuple[str, ...] = ("unet3d", "segresnet", "dynunet", "swinunetr")
#: The one name of each network that a reader sees.
ARCH_LABELS: dict[str, str] = {"unet3d": "3D U-Net", "segresnet": "SegResNet", "dynunet": "DynUNet",
                               "swinunetr": "SwinUNETR"}  # fmt: skip


#: Every side of a SwinUNETR input must be a multiple of this (a 2x2x2 patch embedding, then four 2x merges).
SWIN_DIVISOR = 32
#: Downsampling steps of SegResNet's encoder (MONAI's default ``blocks_down=(1, 2, 2, 4)``).
_SEGRESNET_DOWNS = 3


def _monai_norm(norm: str) -> tuple | str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return "batch" if norm == "batch" else ("instance", {"affine": True})


def _dynunet_plan(
    window_shape: Sequence[int], spacing_mm: Sequence[float] | None, levels: int
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net's kernel sizes and strides for ``window_shape``; see :func:`arch_options`."""
    sizes = [int(s) for s in window_shape]
    spacing = [float(s) for s in (spacing_mm or (1.0, 1.0, 1.0))]
    kernels, strides = [], [[1, 1, 1]]
    while len(strides) < levels:
        ratio = [sp / min(spacing) for sp in spacing]
        stride = [2 if r <= 2 and n >= 8 and n % 2 == 0 else 1 for r, n in zip(ratio, sizes, strict=True)]
        if all(st == 1 for st in stride):
            break
        kernels.append([3 if r <= 2 else 1 for r in ratio])
        strides.append(stride)
        sizes = [n // st for n, st in zip(sizes, stride, strict=True)]
        spacing = [sp * st for sp, st in zip(spacing, stride, strict=True)]
    kernels.append([3, 3, 3])
    return kernels, strides


def arch_options(
    arch: str,
    widths: Sequence[int],
    window_shape: Sequence[int] | None = None,
    spacing_mm: Sequence[float] | None = None,
) -> dict:
    """The settings of ``arch`` that follow from the configuration (recorded in the model file).

    - ``unet3d``, ``segresnet``: none (SegResNet's only width is ``init_filters = widths[0]``;
      its channels double at each of its 3 downsamplings, MONAI's default blocks (1, 2, 2, 4)).
    - ``dynunet``: ``kernel_size`` and ``strides`` by nnU-Net's rule: going down,
      an axis is halved while its spacing is at most twice the finest spacing and it still has
      at least 8 voxels (and an even count); its kernel is 3 where the spacing is at most twice
      the finest, else 1 (so a thick-slice axis is neither convolved nor pooled until the
      in-plane axes have caught up); the bottleneck kernel is 3 everywhere. At most
      ``len(widths) - 1`` downsamplings (the seed U-Net's three); :func:`check_arch` refuses
      a window that allows fewer than two (MONAI's DynUNet needs three levels). Its filters
      are the first widths, one per level. Without ``spacing_mm`` (a fixed-shape grid, whose
      spacing differs by case) the window is taken as isotropic.
    - ``swinunetr``: ``feature_size``, the multiple of 12 nearest ``widths[0]`` (at least 12:
      SwinUNETR's heads (3, 6, 12, 24) must divide its feature sizes); 32 -> 36, 8 -> 12.

    Args:
        arch: one of :data:`ARCHS`.
        widths: the configuration's channel widths.
        window_shape: the training input (D, H, W) in voxels; needed for ``dynunet``.
        spacing_mm: the grid's voxel spacing (D, H, W) in mm, or None if it differs by case.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch == "dynunet":
        if window_shape is None:
            raise ValueError("dynunet needs the training window shape (D, H, W) to plan its strides")
        kernels, strides = _dynunet_plan(window_shape, spacing_mm, len(widths))
        return {"kernel_size": kernels, "strides": strides}
    if arch == "swinunetr":
        return {"feature_size": max(12, 12 * round(int(widths[0]) / 12))}
    return {}


def arch_divisors(
    arch: str,
    widths: Sequence[int],
    window_shape: Sequence[int] | None = None,
    spacing_mm: Sequence[float] | None = None,
) -> tuple[int, int, int]:
    """What each side (D, H, W) of an input to ``arch`` must be a multiple of, in voxels.

    8 for ``unet3d`` and ``segresnet`` (three 2x downsamplings), 32 for ``swinunetr``; for
    ``dynunet`` the product of its strides along each axis (planned for ``window_shape`` with
    one level per width).
    """
    if arch == "swinunetr":
        return (SWIN_DIVISOR,) * 3
    if arch == "dynunet":
        strides = arch_options(arch, widths, window_shape, spacing_mm)["strides"]
        return tuple(math.prod(st[axis] for st in strides) for axis in range(3))  # type: ignore[return-value]
    if arch == "segresnet":
        return (2**_SEGRESNET_DOWNS,) * 3
    return (DIVISOR,) * 3


def check_arch(
    arch: str, widths: Sequence[int], window_shape: Sequence[int], spacing_mm: Sequence[float] | None, norm: str
) -> None:
    """Refuse a training window (D, H, W) that ``arch`` with these ``widths`` and ``norm`` cannot take.

    Raises:
        hie_core.errors.ConfigError: ``arch`` is unknown, a side of the window is not a
            multiple of the network's divisor (:func:`arch_divisors`), or ``norm="instance"``
            would leave a bottleneck of a single voxel. The message names the shape and the rule.
    """
    if arch not in ARCHS:
        raise ConfigError(f"arch {arch!r} is not one of {', '.join(ARCHS)}")
    shape = tuple(int(s) for s in window_shape)
    if arch == "dynunet" and len(arch_options(arch, widths, shape, spacing_mm)["strides"]) < 3:
        raise ConfigError(f"arch 'dynunet' needs a window it can halve at least twice (nnU-Net's rule: a side "
                          f"is halved while it has 8 voxels or more); {shape} is too small: use a larger "
                          "patch_shape (or target_shape), or another arch")  # fmt: skip
    divisors = arch_divisors(arch, widths, shape, spacing_mm)
    if any(s % d for s, d in zip(shape, divisors, strict=True)):
        rule = (f"every side divisible by {SWIN_DIVISOR} (a 2x patch embedding and four 2x merges)"
                if arch == "swinunetr" else f"sides divisible by {divisors} (its downsamplings)")  # fmt: skip
        raise ConfigError(f"arch {arch!r} needs {rule}; the training window {shape} is not: choose "
                          "another patch_shape (or target_shape), or another arch")  # fmt: skip
    if norm == "instance" and math.prod(s // d for s, d in zip(shape, divisors, strict=True)) < 2:
        raise ConfigError(f"arch {arch!r} with norm 'instance' needs a bottleneck of at least 2 voxels; "
                          f"{shape} / {divisors} leaves one: use a larger window, or norm='batch'")  # fmt: skip


def output_conv(model: nn.Module) -> nn.Conv3d:
    """The final convolution of a network from :func:`build_model` (whose bias holds the prior)."""
    from monai.networks.nets import DynUNet, SegResNet, SwinUNETR

    if isinstance(model, UNet3D):
        return model.head
    if isinstance(model, SegResNet):
        return model.conv_final[-1].conv
    if isinstance(model, DynUNet):
        return model.output_block.conv.conv
    if isinstance(model, SwinUNETR):
        return model.out.conv.conv
    raise TypeError(f"not a network of hie_core.model.ARCHS: {type(model).__name__}")


def build_model(
    arch: str,
    in_channels: int,
    widths: Sequence[int],
    dropout: Sequence[float],
    norm: str,
    prior_probability: float | None = None,
    window_shape: Sequence[int] | None = None,
    spacing_mm: Sequence[float] | None = None,
    options: dict | None = None,
) -> nn.Module:
    """A network of :data:`ARCHS`, ``in_channels`` maps in, one lesion logit ``(B, 1, D, H, W)`` out.

    - ``unet3d``: :class:`UNet3D` with ``widths``, ``dropout`` and ``norm`` (the seed's).
    - ``segresnet``: MONAI's ``SegResNet`` (Myronenko 2018, without the VAE branch),
      ``init_filters = widths[0]``, trilinear upsampling.
    - ``dynunet``: MONAI's ``DynUNet``, nnU-Net's plain-convolution U-Net (Isensee et al. 2021),
      ``filters = widths`` and nnU-Net's per-axis kernels and strides (:func:`arch_options`);
      no deep supervision, no residual blocks.
    - ``swinunetr``: MONAI's ``SwinUNETR`` (Hatamizadeh et al. 2022), window 7, depths
      (2, 2, 2, 2), ``feature_size`` a multiple of 12 near ``widths[0]``; every input side a
      multiple of 32.

    ``norm`` ("batch" or "instance", with an affine shift) is used by every network's
    convolution blocks, so architectures differ in architecture only (SegResNet's authors use
    GroupNorm, SwinUNETR's transformer blocks keep their LayerNorm). ``dropout`` (four rates
    rising with depth) is the seed U-Net's; the MONAI networks are built without dropout, as
    their authors train them. ``prior_probability`` sets every network's output bias to
    ``logit(p)``, so each starts by predicting "few lesions".

    Args:
        arch: one of :data:`ARCHS`.
        in_channels: input maps (2: ADC and ZADC).
        widths: the configuration's four channel widths.
        dropout: the U-Net's four dropout rates.
        norm: ``"batch"`` or ``"instance"``.
        prior_probability: initial lesion probability in (0, 1), or None (PyTorch's init).
        window_shape: the training input (D, H, W); ``dynunet`` plans its strides from it.
        spacing_mm: the grid's spacing (D, H, W) in mm, or None (see :func:`arch_options`).
        options: settings recorded by :func:`arch_options` (a model file's); None derives them.

    Raises:
        ValueError: an unknown ``arch`` or ``norm``, a prior outside (0, 1), or ``dynunet``
            without a window shape or options.
    """
    if prior_probability is not None and not 0.0 < prior_probability < 1.0:
        raise ValueError(f"prior_probability must be in (0, 1), got {prior_probability}")
    opts = dict(arch_options(arch, widths, window_shape, spacing_mm) if options is None else options)
    if arch == "unet3d":
        return UNet3D(in_channels=in_channels, out_channels=1, widths=tuple(widths), dropout=tuple(dropout),
                      prior_probability=prior_probability, norm=norm)  # fmt: skip
    from monai.networks.nets import DynUNet, SegResNet, SwinUNETR

    if arch == "segresnet":
        model: nn.Module = SegResNet(spatial_dims=3, init_filters=int(widths[0]), in_channels=in_channels,
                                     out_channels=1, norm=_monai_norm(norm))  # fmt: skip
    elif arch == "dynunet":
        kernels, strides = opts["kernel_size"], opts["strides"]
        filters = [int(w) for w in widths[: len(strides)]]
        model = DynUNet(spatial_dims=3, in_channels=in_channels, out_channels=1, kernel_size=kernels,
                        strides=strides, upsample_kernel_size=strides[1:], filters=filters,
                        norm_name=_monai_norm(norm), deep_supervision=False)  # fmt: skip
    else:
        model = SwinUNETR(in_channels=in_channels, out_channels=1, feature_size=int(opts["feature_size"]),
                          norm_name=_monai_norm(norm), spatial_dims=3)  # fmt: skip
    if prior_probability is not None:
        nn.init.constant_(output_conv(model).bias, math.log(prior_probability / (1.0 - prior_probability)))
    return model
