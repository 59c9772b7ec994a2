"""The networks a run can train, each returning logits: the seed's 3D U-Net and three of MONAI's.

:func:`build_model` builds any of :data:`ARCHS` (see its docstring for how each one's sizes
follow from the configuration), :func:`check_arch` says whether a training window suits it.
The rest of this docstring describes :class:`UNet3D`, the seed's network and the default.

Architecture (the seed's description; its widths and dropout rates were never published):

- three encoder blocks, each a double 3x3x3 convolution (``bias=False``) -> BatchNorm ->
  LeakyReLU, then dropout, then a 2x2x2 max-pool;
- a bottleneck: the same double convolution at ``widths[3]``, then dropout;
- three decoder blocks, each a 2x2x2 transposed convolution with stride 2 (halving the
  channels to the skip's width), concatenation with the encoder skip, and a double
  convolution;
- a 1x1x1 output convolution returning logits ``(B, out_channels, D, H, W)``.

Three pooling steps mean every spatial size must be divisible by 8; the seed's grid
(D, H, W) = (32, 192, 192) is. Other sizes raise ``ValueError`` unless the model was built
with ``pad_to_multiple=True``, which zero-pads the input at the far end of each axis and
crops the logits back.

The module also provides :func:`count_parameters` and :func:`forward_flops` (FLOPs counted
by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device, so no memory or
compute is spent).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hie_core.errors import ConfigError

__all__ = ["UNet3D", "count_parameters", "forward_flops", "training_memory_bytes", "DIVISOR", "NORMS", "ARCHS",
           "ARCH_LABELS", "build_model", "arch_options", "arch_divisors", "check_arch", "output_conv",
           "SWIN_DIVISOR"]  # fmt: skip

#: Every spatial size must be a multiple of this (three 2x2x2 max-pools).
DIVISOR = 8

DEFAULT_WIDTHS = (32, 64, 128, 256)
DEFAULT_DROPOUT = (0.0, 0.1, 0.2, 0.3)


#: The normalisation layers a U-Net can use, the seed's BatchNorm or InstanceNorm (nnU-Net's choice for patches).
NORMS = ("batch", "instance")
#: The networks a run can train (the seed's 3D U-Net and three of MONAI's).
ARCHS: tuple[str, ...] = ("unet3d", "segresnet", "dynunet", "swinunetr")
#: The one name of each network that a reader sees.
ARCH_LABELS: dict[str, str] = {"unet3d": "3D U-Net", "segresnet": "SegResNet", "dynunet": "DynUNet",
                               "swinunetr": "SwinUNETR"}  # fmt: skip


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.InstanceNorm3d(channels, affine=True)


class DoubleConv(nn.Sequential):
    """(Conv3d 3x3x3 -> norm -> LeakyReLU) twice, then optional 3D dropout.

    Convolutions have no bias: the normalisation that follows each one has its own shift.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dropout: float, negative_slope: float, norm: str = "batch"
    ) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                nn.Conv3d(c_in, out_channels, kernel_size=3, padding=1, bias=False),
                _norm(norm, out_channels),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Transposed conv 2x2x2 stride 2, concatenation with the skip, double convolution."""

    def __init__(
        self, in_channels: int, out_channels: int, negative_slope: float, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, 0.0, negative_slope, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


def _check_config(
    in_channels: int,
    out_channels: int,
    widths: Sequence[int],
    dropout: Sequence[float],
    negative_slope: float,
) -> None:
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    if len(widths) != 4 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be 4 positive channel counts, got {tuple(widths)}")
    if len(dropout) != 4 or any(not 0.0 <= p < 1.0 for p in dropout):
        raise ValueError(f"dropout must be 4 rates in [0, 1), got {tuple(dropout)}")
    if negative_slope < 0:
        raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")


class UNet3D(nn.Module):
    """3D U-Net with three down/up levels and a bottleneck; returns logits.

    Defaults, chosen because the seed did not publish them:

    - ``widths=(32, 64, 128, 256)``: the classic 3D U-Net doubling from 32 (Cicek et al.
      2016 use 32-64-128-256 in the encoder); about 5.6 M parameters and about 506 GFLOP per
      32x192x192 volume forward, which fits batch 4 in one GPU's memory with room to spare.
    - ``dropout=(0.0, 0.1, 0.2, 0.3)``: rates for encoder levels 1-3 and the bottleneck,
      rising with depth as the seed says. No dropout at full resolution, where the features
      are low level and lesions are often a handful of voxels; most at the bottleneck,
      where the parameters are. Dropout is channel-wise (``nn.Dropout3d``), the usual
      choice for convolutional features whose neighbouring voxels are strongly correlated.
      Decoder blocks have no dropout (the seed names dropout only for the encoder).
    - ``negative_slope=0.01``: PyTorch's LeakyReLU default.
    - Convolutions before BatchNorm have ``bias=False`` (the BatchNorm shift makes a bias
      redundant); the transposed convolutions and the output convolution keep theirs.

    Args:
        in_channels: input channels (2: ADC and ZADC).
        out_channels: output channels (1: lesion logit).
        widths: channels at encoder levels 1-3 and at the bottleneck.
        dropout: dropout rates at encoder levels 1-3 and at the bottleneck, each in [0, 1).
        negative_slope: LeakyReLU slope for negative inputs.
        prior_probability: if given, the output bias starts at ``logit(prior_probability)``
            so that the untrained network predicts this lesion probability everywhere
            (Lin et al. 2017's prior initialisation for rare foreground); ``None`` keeps
            PyTorch's default initialisation.
        norm: ``"batch"`` (the seed's BatchNorm, the default) or ``"instance"``
            (InstanceNorm with an affine shift, as nnU-Net uses: it normalises each sample by
            its own statistics, so evaluation does not depend on running averages gathered
            from small batches of lesion-centred patches).
        pad_to_multiple: if True, inputs whose spatial sizes are not multiples of 8 are
            zero-padded at the far end of each axis and the logits cropped back; if False
            (the default) such inputs raise ``ValueError``.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        dropout: Sequence[float] = DEFAULT_DROPOUT,
        negative_slope: float = 0.01,
        pad_to_multiple: bool = False,
        prior_probability: float | None = None,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        _check_config(in_channels, out_channels, widths, dropout, negative_slope)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.norm = norm
        w = tuple(int(c) for c in widths)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.widths = w
        self.dropout = tuple(float(p) for p in dropout)
        self.negative_slope = float(negative_slope)
        self.pad_to_multiple = bool(pad_to_multiple)
        c_in = (in_channels, w[0], w[1])
        self.encoders = nn.ModuleList(
            DoubleConv(c_in[i], w[i], self.dropout[i], negative_slope, norm) for i in range(3)
        )
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.bottleneck = DoubleConv(w[2], w[3], self.dropout[3], negative_slope, norm)
        self.decoders = nn.ModuleList(UpBlock(w[i + 1], w[i], negative_slope, norm) for i in (2, 1, 0))
        self.head = nn.Conv3d(w[0], out_channels, kernel_size=1)
        if prior_probability is not None:
            if not 0.0 < prior_probability < 1.0:
                raise ValueError(f"prior_probability must be in (0, 1), got {prior_probability}")
            nn.init.constant_(self.head.bias, math.log(prior_probability / (1.0 - prior_probability)))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, D, H, W), got shape {tuple(x.shape)}")
        spatial = tuple(x.shape[2:])
        if not self.pad_to_multiple and any(s % DIVISOR for s in spatial):
            raise ValueError(
                f"spatial size (D, H, W) = {spatial} must be divisible by {DIVISOR} "
                f"(three 2x2x2 poolings); resample/pad the input or use pad_to_multiple=True"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of volumes.

        Args:
            x: float tensor (B, in_channels, D, H, W); D, H, W multiples of 8 unless
                ``pad_to_multiple`` is set.

        Returns:
            logits (B, out_channels, D, H, W) (apply a sigmoid for probabilities).
        """
        self._check_input(x)
        spatial = tuple(x.shape[2:])
        pad = [(-s) % DIVISOR for s in spatial]
        if any(pad):
            # F.pad takes (W_left, W_right, H_left, H_right, D_left, D_right).
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = decoder(x, skip)
        logits = self.head(x)
        if any(pad):
            logits = logits[:, :, : spatial[0], : spatial[1], : spatial[2]]
        return logits


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
    widths: Sequence[int] = DEFAULT_WIDTHS,
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
    arch: str, window_shape: Sequence[int] | None = None, spacing_mm: Sequence[float] | None = None
) -> tuple[int, int, int]:
    """What each side (D, H, W) of an input to ``arch`` must be a multiple of, in voxels.

    8 for ``unet3d`` and ``segresnet`` (three 2x downsamplings), 32 for ``swinunetr``; for
    ``dynunet`` the product of its strides along each axis (planned for ``window_shape``).
    """
    if arch == "swinunetr":
        return (SWIN_DIVISOR,) * 3
    if arch == "dynunet":
        strides = arch_options(arch, DEFAULT_WIDTHS, window_shape, spacing_mm)["strides"]
        return tuple(math.prod(st[axis] for st in strides) for axis in range(3))  # type: ignore[return-value]
    if arch == "segresnet":
        return (2**_SEGRESNET_DOWNS,) * 3
    return (DIVISOR,) * 3


def check_arch(
    arch: str, window_shape: Sequence[int], spacing_mm: Sequence[float] | None = None, norm: str = "batch"
) -> None:
    """Refuse a training window (D, H, W) that ``arch`` cannot take.

    Raises:
        hie_core.errors.ConfigError: ``arch`` is unknown, a side of the window is not a
            multiple of the network's divisor (:func:`arch_divisors`), or ``norm="instance"``
            would leave a bottleneck of a single voxel. The message names the shape and the rule.
    """
    if arch not in ARCHS:
        raise ConfigError(f"arch {arch!r} is not one of {', '.join(ARCHS)}")
    shape = tuple(int(s) for s in window_shape)
    if arch == "dynunet" and len(arch_options(arch, DEFAULT_WIDTHS, shape, spacing_mm)["strides"]) < 3:
        raise ConfigError(f"arch 'dynunet' needs a window it can halve at least twice (nnU-Net's rule: a side "
                          f"is halved while it has 8 voxels or more); {shape} is too small: use a larger "
                          "patch_shape (or target_shape), or another arch")  # fmt: skip
    divisors = arch_divisors(arch, shape, spacing_mm)
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
    arch: str = "unet3d",
    in_channels: int = 2,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    dropout: Sequence[float] = DEFAULT_DROPOUT,
    norm: str = "batch",
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
    arch: str = "unet3d",
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
        spacing_mm: The grid's spacing (D, H, W) in mm, or None (see :func:`arch_options`).
    """
    voxels = math.prod(int(v) for v in window)
    if arch == "unet3d":
        per_voxel = 2 * sum(6 * w / 8**level for level, w in enumerate(widths))  # encoder and decoder
        return int(batch_size * voxels * per_voxel * 4 * 2)
    model = build_model(arch, 2, widths, window_shape=window, spacing_mm=spacing_mm).to("meta").train()
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
