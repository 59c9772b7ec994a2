"""The seed's 3D U-Net (:class:`~hie_core.model.UNet3D`), the default network.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet3D", "DoubleConv", "UpBlock", "DIVISOR", "NORMS"]

#: Every spatial size must be a multiple of this (three 2x2x2 max-pools).
DIVISOR = 8

#: The normalisation layers a U-Net can use, the seed's BatchNorm or InstanceNorm (nnU-Net's choice for patches).
NORMS = ("batch", "instance")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.InstanceNorm3d(channels, affine=True)


class DoubleConv(nn.Sequential):
    """(Conv3d 3x3x3 -> norm -> LeakyReLU) twice, then optional 3D dropout.

    Convolutions have no bias: the normalisation that follows each one has its own shift.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dropout: float, negative_slope: float, norm: str
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
        self, in_channels: int, out_channels: int, negative_slope: float, norm: str
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
        *,
        widths: Sequence[int],
        dropout: Sequence[float],
        norm: str,
        negative_slope: float = 0.01,
        pad_to_multiple: bool = False,
        prior_probability: float | None = None,
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
